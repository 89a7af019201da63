//! Generates the OpenAPI v3 documents at build time (see src/openapi_gen.rs for why) and writes them gzip'd
//! into OUT_DIR with the Rust table `openapi.rs` includes.

#[path = "src/openapi_gen.rs"]
mod openapi_gen;

use std::io::Write;

/// Must match `KUBE_MAJOR`.`KUBE_MINOR` in src/lib.rs (a unit test there checks the embedded version).
const KUBE_VERSION: &str = "1.33";

fn main() {
    println!("cargo:rerun-if-changed=src/openapi_gen.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut table = String::from("&[\n");
    for (key, json) in openapi_gen::generate(KUBE_VERSION) {
        let file = format!("openapi_v3_{}.json.gz", key.replace('/', "_"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&json).expect("in memory");
        std::fs::write(out.join(&file), gz.finish().expect("in memory")).expect("writing OUT_DIR");
        table.push_str(&format!(
            "    ({key:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}\"))),\n"
        ));
    }
    table.push(']');
    std::fs::write(out.join("openapi_v3.rs"), table).expect("writing OUT_DIR");
}
