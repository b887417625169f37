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
    let mut config = prost_build::Config::new();
    config
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
        .service_generator(Box::new(InPlaceCalls {
            tonic: tonic_build::configure().service_generator(),
            code: String::new(),
        }))
        .compile_protos(&protos, &["."])?;
    Ok(())
}

/// tonic's clients and servers, and beside each service's client a `<service>_calls` module:
/// the same methods, answered either by tonic's client or, in one process, by the service's
/// own handler called in place (no encoding; see `InPlace` in `src/lib.rs`). Streaming
/// methods always go through the client.
struct InPlaceCalls {
    tonic: Box<dyn prost_build::ServiceGenerator>,
    code: String,
}

impl prost_build::ServiceGenerator for InPlaceCalls {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        self.code.push_str(&calls_module(&service));
        self.tonic.generate(service, buf);
    }

    fn finalize(&mut self, buf: &mut String) {
        self.tonic.finalize(buf);
        buf.push_str(&std::mem::take(&mut self.code));
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.tonic.finalize_package(package, buf);
    }
}

fn calls_module(service: &prost_build::Service) -> String {
    use heck::ToSnakeCase as _;
    use std::fmt::Write as _;
    // tonic's module names: `OrderService` → `order_service_client`, `order_service_server`.
    let (name, module) = (&service.name, service.name.to_snake_case());
    let result = |output: &str| {
        format!("std::result::Result<tonic::Response<super::{output}>, tonic::Status>")
    };
    let streams = |m: &prost_build::Method| m.client_streaming || m.server_streaming;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let mut line = |text: String| writeln!(out, "{text}").expect("writing to a String");
    line(format!(
        "/// `{name}` called in place or through its client."
    ));
    line(format!("pub mod {module}_calls {{"));
    line(format!(
        "/// `{name}`'s unary methods, object-safe: what a call in place reaches."
    ));
    // The trait and its blanket impl over tonic's server trait, method by method.
    let (mut declared, mut forwarded) = (String::new(), String::new());
    for m in service.methods.iter().filter(|m| !streams(m)) {
        let (method, input, output) = (&m.name, &m.input_type, result(&m.output_type));
        let signature = format!(
            "async fn {method}(&self, request: tonic::Request<super::{input}>) -> {output}"
        );
        declared.push_str(&format!("{signature};\n"));
        forwarded.push_str(&format!(
            "{signature} {{ super::{module}_server::{name}::{method}(self, request).await }}\n"
        ));
    }
    line("#[tonic::async_trait]".into());
    line(format!(
        "pub trait {name}Unary: Send + Sync + 'static {{\n{declared}}}"
    ));
    line("#[tonic::async_trait]".into());
    line(format!(
        "impl<T: super::{module}_server::{name}> {name}Unary for T {{\n{forwarded}}}"
    ));
    line(format!(
        "/// `{name}`'s methods: its handler called in place where this process serves it, \
         its client otherwise."
    ));
    line("#[derive(Clone)]".into());
    line(format!("pub struct {name}Calls {{"));
    line(format!(
        "remote: super::{module}_client::{name}Client<crate::Upstream>,"
    ));
    line(format!(
        "in_place: Option<crate::InPlace<dyn {name}Unary>>,"
    ));
    line("}".into());
    line(format!("impl {name}Calls {{"));
    line(format!(
        "pub fn new(upstream: crate::Upstream, in_place: Option<crate::InPlace<dyn {name}Unary>>) \
         -> Self {{ Self {{ remote: super::{module}_client::{name}Client::new(upstream)\
         .max_decoding_message_size(crate::MAX_ANSWER_BYTES), in_place }} }}"
    ));
    for m in &service.methods {
        let (method, input) = (&m.name, &m.input_type);
        if streams(m) {
            let output = &m.output_type;
            line("/// A stream: always through the client.".into());
            line(format!(
                "pub async fn {method}(&mut self, request: impl tonic::IntoRequest<super::{input}>) \
                 -> std::result::Result<tonic::Response<tonic::codec::Streaming<super::{output}>>, \
                 tonic::Status> {{ self.remote.{method}(request).await }}"
            ));
            continue;
        }
        let output = result(&m.output_type);
        let path = format!(
            "/{}.{}/{}",
            service.package, service.proto_name, m.proto_name
        );
        line(format!(
            "pub async fn {method}(&mut self, request: impl tonic::IntoRequest<super::{input}>) \
             -> {output} {{ match &self.in_place {{ \
             Some(in_place) => in_place.call(\"{path}\", request.into_request(), \
             |service, request| async move {{ service.{method}(request).await }}).await, \
             None => self.remote.{method}(request).await }} }}"
        ));
    }
    line("}".into());
    line("}".into());
    out
}
