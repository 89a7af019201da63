//! k1s-api
