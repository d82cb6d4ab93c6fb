//! Compiles `proto/` (our subset of the cTrader Open API schema) with protox, a pure-Rust
//! protobuf compiler, so that no system `protoc` is needed, and generates prost types.

use std::path::PathBuf;

/// Messages that carry credentials: prost must not derive `Debug` for them, the crate
/// implements a redacting `Debug` by hand (see `src/redact.rs`).
const SECRET_BEARING: &[&str] = &[
    ".ProtoMessage",
    ".ProtoOAApplicationAuthReq",
    ".ProtoOAAccountAuthReq",
    ".ProtoOAGetAccountListByAccessTokenReq",
    ".ProtoOAGetAccountListByAccessTokenRes",
    ".ProtoOARefreshTokenReq",
    ".ProtoOARefreshTokenRes",
];

const FILES: &[&str] = &[
    "OpenApiCommonModelMessages.proto",
    "OpenApiCommonMessages.proto",
    "OpenApiModelMessages.proto",
    "OpenApiMessages.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a copy of the workspace that
    // shares this target directory must compile its own `proto/`, not the first copy's.
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    for file in FILES {
        println!("cargo:rerun-if-changed={}", proto_dir.join(file).display());
    }

    let fds = protox::compile(FILES, [&proto_dir])?;
    let mut config = prost_build::Config::new();
    // `bytes` fields as `bytes::Bytes`: the envelope's payload is then a zero-copy slice of the
    // frame buffer, which keeps the quote hot path free of copies.
    config.bytes(["."]);
    config.skip_debug(SECRET_BEARING.iter().copied());
    config.compile_fds(fds)?;
    Ok(())
}
