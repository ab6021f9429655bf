//! Compiles `proto/` with a vendored `protoc`, so a fresh machine needs no system protobuf.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let events = root.join("fengqiao/events/v1/events.proto");
    // Every file of the API package: services may be split across files by who uses them.
    let mut api: Vec<PathBuf> = std::fs::read_dir(root.join("fengqiao/api/v1"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    api.sort();
    println!("cargo:rerun-if-changed={}", root.display());

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    let mut protos = vec![events];
    if grpc {
        protos.extend(api);
    }
    tonic_prost_build::configure()
        // Parties carry names, phone and ID numbers: their `Debug` is written by hand in lib.rs
        // and shows none of it, so no log line built with `{:?}` can leak them.
        .skip_debug(["fengqiao.events.v1.Party"])
        // Undecodable requests are the caller's fault: INVALID_ARGUMENT (see src/codec.rs).
        .codec_path("crate::codec::ApiCodec")
        .build_client(grpc)
        .build_server(grpc)
        .file_descriptor_set_path(out.join("fengqiao_descriptor.bin"))
        .compile_with_config(config, &protos, &[root])?;
    Ok(())
}
