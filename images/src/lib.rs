//! The local OCI image store, archive import and the built-in busybox recipe.
