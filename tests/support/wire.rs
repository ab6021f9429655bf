//! The API on the wire, for tests that cover every RPC without knowing them: the RPCs and
//! message types from the compiled descriptor set, a codec for raw encoded messages, a
//! synthesiser of valid requests (every field filled by its name and type), and a raw call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut};
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use fengqiao_domain::event::pb::{self, Role};

use crate::{COMMITTEE, COMMUNITY, req};

/// The partner institution synthesised requests name (a court).
pub const COURT: &str = "jiangjin-court";
const API_PACKAGE: &str = "fengqiao.api.v1";

/// Sends and receives raw encoded messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// One RPC of the API.
#[derive(Debug, Clone)]
pub struct Rpc {
    pub service: String,
    pub method: String,
    pub input: String,
    pub server_streaming: bool,
}

/// The compiled API: its RPCs and every message type by full name (`.pkg.Name`).
pub struct Api {
    pub rpcs: Vec<Rpc>,
    pub messages: HashMap<String, DescriptorProto>,
}

impl Api {
    /// Reads the compiled descriptor set.
    pub fn load() -> Self {
        let set = FileDescriptorSet::decode(fengqiao_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut rpcs = Vec::new();
        let mut messages = HashMap::new();
        fn nested(prefix: &str, m: &DescriptorProto, into: &mut HashMap<String, DescriptorProto>) {
            let name = format!("{prefix}.{}", m.name());
            for n in &m.nested_type {
                nested(&name, n, into);
            }
            into.insert(name, m.clone());
        }
        for file in &set.file {
            let package = format!(".{}", file.package());
            for m in &file.message_type {
                nested(&package, m, &mut messages);
            }
            if file.package() != API_PACKAGE {
                continue;
            }
            for service in &file.service {
                for method in &service.method {
                    assert!(!method.client_streaming(), "{}: client streaming is not covered", method.name());
                    rpcs.push(Rpc {
                        service: format!("{}.{}", file.package(), service.name()),
                        method: method.name().to_owned(),
                        input: method.input_type().to_owned(),
                        server_streaming: method.server_streaming(),
                    });
                }
            }
        }
        Self { rpcs, messages }
    }

    /// Whether the RPC changes a case: its request carries `CommandMeta`.
    pub fn is_command(&self, rpc: &Rpc) -> bool {
        self.messages[&rpc.input].field.iter().any(|f| f.type_name() == ".fengqiao.api.v1.CommandMeta")
    }
}

/// What a synthesised request is about.
pub struct Target<'a> {
    pub case_id: &'a str,
    /// Another case in the same reach (a merge names it).
    pub other_case_id: &'a str,
    pub role: Role,
}

static KEYS: AtomicU64 = AtomicU64::new(0);

/// A valid value for a string field, by message and field name; `None` leaves it empty.
fn string_value(message: &str, field: &str, t: &Target<'_>) -> Option<String> {
    let value = match (message, field) {
        (_, "case_id") => t.case_id.to_owned(),
        (_, f) if f.ends_with("case_id") => t.other_case_id.to_owned(),
        (_, "referral_id") => "R1".to_owned(),
        (_, "partner_id" | "source_partner_id" | "court_id") => COURT.to_owned(),
        (_, "committee_id") => COMMITTEE.to_owned(),
        // The queue is the first kind, a committee.
        ("WatchQueueRequest", "id") => COMMITTEE.to_owned(),
        (_, f) if f.ends_with("unit_code") => COMMUNITY.to_owned(),
        (_, "phone") => "13812345678".to_owned(),
        (_, "external_ref") => format!("GD-MATRIX-{}", KEYS.fetch_add(1, Ordering::Relaxed)),
        (_, "idempotency_key") => format!("matrix-{}", KEYS.fetch_add(1, Ordering::Relaxed)),
        (_, "category") => "邻里纠纷".to_owned(),
        (_, "from_date" | "to_date") => "2026-01-01".to_owned(),
        // Optional, or naming the caller when empty.
        ("ListMediatorQueueRequest", "mediator_id") => return None,
        (_, "resident_id" | "session_id" | "page_token" | "correlation_id") => return None,
        _ => "x1".to_owned(),
    };
    Some(value)
}

/// A valid value for a numeric, boolean or enum field.
fn number_value(message: &str, field: &str, kind: Type, t: &Target<'_>) -> Option<u64> {
    let in_a_day = u64::try_from(jiff::Timestamp::now().as_millisecond() + 86_400_000).unwrap_or(0);
    Some(match (message, field, kind) {
        (_, _, Type::Bool) => return None,
        ("RegisterCaseRequest", "channel", _) if t.role == Role::PartnerAgent => pb::Channel::CourtDelegation as u64,
        (_, f, _) if f.ends_with("_unix_ms") => in_a_day,
        (_, "page_size", _) => 10,
        _ => 1,
    })
}

/// Encodes a valid instance of message `name`.
pub fn synthesise(api: &Api, name: &str, t: &Target<'_>) -> Vec<u8> {
    let message = &api.messages[name];
    let short = message.name();
    let mut out = Vec::new();
    for field in &message.field {
        let number = u32::try_from(field.number()).expect("field number");
        if field.proto3_optional() {
            // Optional fields stay unset, except the version pin that keeps commands harmless.
            if field.name() == "expected_version" {
                encode_key(number, WireType::Varint, &mut out);
                encode_varint(999_999, &mut out);
            }
            continue;
        }
        let repeated = field.label() == Label::Repeated;
        match field.r#type() {
            Type::String => {
                if let Some(v) = string_value(short, field.name(), t) {
                    encode_key(number, WireType::LengthDelimited, &mut out);
                    encode_varint(v.len() as u64, &mut out);
                    out.extend_from_slice(v.as_bytes());
                }
            }
            Type::Message => {
                let inner = synthesise(api, field.type_name(), t);
                encode_key(number, WireType::LengthDelimited, &mut out);
                encode_varint(inner.len() as u64, &mut out);
                out.extend_from_slice(&inner);
            }
            Type::Bytes => {}
            kind => {
                if let Some(v) = number_value(short, field.name(), kind, t) {
                    encode_key(number, WireType::Varint, &mut out);
                    encode_varint(v, &mut out);
                }
            }
        }
        let _ = repeated; // One element is a valid repeated field.
    }
    out
}

/// The outcome of one call: the status code, and the response bytes when it succeeded (for a
/// stream: its first message, awaited 300 ms).
pub async fn call(channel: &Channel, rpc: &Rpc, token: &str, body: Vec<u8>) -> (Code, Vec<u8>) {
    call_waiting(channel, rpc, token, body, std::time::Duration::from_millis(300)).await
}

/// As [`call`], awaiting a stream's first message at most `first`.
pub async fn call_waiting(
    channel: &Channel,
    rpc: &Rpc,
    token: &str,
    body: Vec<u8>,
    first: std::time::Duration,
) -> (Code, Vec<u8>) {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    let path: PathAndQuery = format!("/{}/{}", rpc.service, rpc.method).parse().expect("path");
    if rpc.server_streaming {
        match grpc.server_streaming(req(token, body), path, Raw).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                match tokio::time::timeout(first, stream.message()).await {
                    Ok(Ok(Some(bytes))) => (Code::Ok, bytes),
                    Ok(Err(status)) => (status.code(), Vec::new()),
                    Ok(Ok(None)) | Err(_) => (Code::Ok, Vec::new()),
                }
            }
            Err(status) => (status.code(), Vec::new()),
        }
    } else {
        match grpc.unary(req(token, body), path, Raw).await {
            Ok(response) => (Code::Ok, response.into_inner()),
            Err(status) => (status.code(), Vec::new()),
        }
    }
}
