//! Shared harness for the integration tests and the benchmark: start the real `k1s` binary, clean up after it.
