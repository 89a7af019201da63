//! In-process router tests (being written).
