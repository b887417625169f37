//! Compiles `diandan/v1/*.proto` with the vendored `protoc`, so a fresh machine needs none.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);

    let protos = [
        "diandan/v1/common.proto",
        "diandan/v1/identity.proto",
        "diandan/v1/orders.proto",
        "diandan/v1/dispatch.proto",
        "diandan/v1/volunteers.proto",
        "diandan/v1/organization.proto",
        "diandan/v1/reviews.proto",
        "diandan/v1/stats.proto",
        "diandan/v1/ledger.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_build::configure()
        .file_descriptor_set_path(out_dir.join("diandan_descriptor.bin"))
        // The same messages serve the HTTP JSON API: serde for the wire, utoipa for OpenAPI.
        .message_attribute(
            ".diandan.v1",
            "#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)] #[serde(default, deny_unknown_fields)]",
        )
        // Query-string requests also describe themselves as OpenAPI parameters.
        .message_attribute(
            ".diandan.v1.ListMyOrdersRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .message_attribute(
            ".diandan.v1.ListClaimableOrdersRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .message_attribute(
            ".diandan.v1.GetOrgTreeRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .message_attribute(
            ".diandan.v1.ListTeamsRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .message_attribute(
            ".diandan.v1.ListShopItemsRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .message_attribute(
            ".diandan.v1.GetCheckpointRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .message_attribute(
            ".diandan.v1.ListContactReadsRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .message_attribute(
            ".diandan.v1.GetConsistencyProofRequest",
            "#[derive(utoipa::IntoParams)] #[into_params(parameter_in = Query)]",
        )
        .compile_protos(&protos, &["."])?;
    Ok(())
}
