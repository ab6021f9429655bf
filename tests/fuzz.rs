//! Hostile input, fuzzed: every RPC of the compiled API receives arbitrary bytes and arbitrary
//! well-formed messages (hostile strings: controls, bidi overrides, combining marks, 20,000
//! characters; any integers and enum values; lists of hundreds of entries), sent by a role the
//! matrix allows, so the request is parsed. The service must answer every one with a deliberate
//! status — a bad request is `INVALID_ARGUMENT` — never `INTERNAL`, `UNKNOWN` or a dropped
//! connection, and must still serve afterwards.
//!
//! Bounded for CI: `FUZZ_CASES` cases per RPC (default 128, a quarter raw bytes, the rest messages; some
//! ten seconds in all). Raise it locally to search longer.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_types::field_descriptor_proto::{Label, Type};
use tonic::Code;

use fengqiao::authz::MATRIX;
use fengqiao_domain::event::pb::Role;
use fengqiao_tests::wire::{Api, COURT, Rpc, Target, call_waiting, synthesise};
use fengqiao_tests::*;

/// A small deterministic generator driven by the proptest input.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Strings that have broken parsers before.
fn hostile_string(d: &mut Dice) -> String {
    const PIECES: &[&str] = &[
        "张三",
        "\u{0}",
        "\n",
        "\t",
        "\r\n",
        "\u{202e}",
        "\u{2066}",
        "e\u{301}",
        "\u{feff}",
        " ",
        "-",
        "+86",
        "13812345678",
        "11010519491231002X",
        "500116001002",
        "50011600100201",
        "R1",
        "S1",
        "%",
        "_",
        "\\",
        "'",
        "\"",
        "😀",
        "\u{10ffff}",
        "\u{7f}",
        "0",
        "x",
    ];
    match d.below(6) {
        0 => String::new(),
        1 => "字".repeat(20_000),
        2 => "9".repeat(d.below(40) as usize),
        _ => (0..=d.below(4)).map(|_| PIECES[d.below(PIECES.len() as u64) as usize]).collect(),
    }
}

/// An arbitrary well-formed instance of message `name`. Mostly a valid request (as the matrix
/// test would send it) with one or two fields made hostile, so that parsing gets deep before it
/// meets them; sometimes every field hostile.
fn hostile_message(api: &Api, name: &str, t: &Target<'_>, d: &mut Dice, depth: u32) -> Vec<u8> {
    let valid = synthesise(api, name, t);
    let fields = &api.messages[name].field;
    if depth > 3 || d.below(8) == 0 || fields.is_empty() {
        return valid;
    }
    let everything = d.below(4) == 0;
    let first = d.below(fields.len() as u64) as usize;
    let chosen = [first, if d.below(2) == 0 { first } else { d.below(fields.len() as u64) as usize }];
    let mut out = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        if !everything && !chosen.contains(&i) {
            continue;
        }
        let number = u32::try_from(field.number()).unwrap_or(1);
        let repeats = match (field.label() == Label::Repeated, d.below(10)) {
            (true, 0) => 300 + d.below(200) as usize,
            (true, 1..=3) => d.below(5) as usize,
            _ => 1,
        };
        for _ in 0..repeats {
            match field.r#type() {
                Type::String | Type::Bytes => {
                    let v = hostile_string(d);
                    encode_key(number, WireType::LengthDelimited, &mut out);
                    encode_varint(v.len() as u64, &mut out);
                    out.extend_from_slice(v.as_bytes());
                }
                Type::Message => {
                    let inner = hostile_message(api, field.type_name(), t, d, depth + 1);
                    encode_key(number, WireType::LengthDelimited, &mut out);
                    encode_varint(inner.len() as u64, &mut out);
                    out.extend_from_slice(&inner);
                }
                _ => {
                    let v = match d.below(4) {
                        0 => d.next(),
                        1 => u64::MAX,
                        2 => d.below(12),
                        _ => (-1_i64) as u64,
                    };
                    encode_key(number, WireType::Varint, &mut out);
                    encode_varint(v, &mut out);
                }
            }
        }
    }
    // The valid fields first: a later occurrence of a field overrides (or, for a list, extends)
    // the earlier one.
    if everything && d.below(2) == 0 { out } else { [valid, out].concat() }
}

/// A token for a role that may call `rpc`, placed so that the fixture case is in its reach.
fn caller(app: &TestApp, rpc: &Rpc) -> (String, Role) {
    let role = MATRIX.iter().find(|(n, _, _)| *n == rpc.method).and_then(|(_, r, _)| r.first().copied());
    let role = role.unwrap_or(Role::Dispatcher);
    let (name, unit, committee, partner) = match role {
        Role::Hotline => ("hotline", COMMUNITY, "", ""),
        Role::GridWorker => ("grid_worker", COMMUNITY, "", ""),
        Role::Mediator => ("mediator", COMMUNITY, COMMITTEE, ""),
        Role::CommitteeLead => ("committee_lead", COMMUNITY, COMMITTEE, ""),
        Role::PartnerAgent => ("partner_agent", DISTRICT, "", COURT),
        Role::Supervisor => ("supervisor", DISTRICT, "", ""),
        Role::Admin => ("admin", DISTRICT, "", ""),
        _ => ("dispatcher", STREET, "", ""),
    };
    let token = app.token_with(&format!("fuzz-{name}"), name, unit, |c| {
        c.committee = committee.to_owned();
        c.partner = partner.to_owned();
    });
    (token, role)
}

/// Whether a status is a deliberate answer. Anything else (`INTERNAL`, `UNKNOWN`, and the
/// `CANCELLED` or `UNAVAILABLE` a client sees when a handler panics and the stream is reset)
/// means the service lost control of the request.
fn uncontrolled(code: Code) -> bool {
    !matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::PermissionDenied
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
    )
}

#[test]
fn arbitrary_requests_to_every_rpc_get_a_deliberate_answer() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(TestApp::spawn_with(|s| s.read_wait_ms = 100));
    let api = Api::load();
    let channel = runtime.block_on(app.channel());
    let case_id = runtime.block_on(async {
        let order = hotline_order("GD-FUZZ-1");
        let reg = app.intake().await.register_case(req(&app.token("hotline", COMMUNITY), order)).await;
        reg.expect("fixture case").into_inner().case_id
    });
    let cases: u32 = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    let mut failures = Vec::new();
    for rpc in &api.rpcs {
        let (token, role) = caller(&app, rpc);
        let target = Target { case_id: &case_id, other_case_id: &case_id, role };
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let strategy = (any::<u8>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300));
        let result = runner.run(&strategy, |(pick, seed, bytes)| {
            // A quarter raw bytes, the rest well-formed messages.
            let body =
                if pick < 64 { bytes } else { hostile_message(&api, &rpc.input, &target, &mut Dice(seed | 1), 0) };
            let wait = std::time::Duration::from_millis(20);
            let (code, _) = runtime.block_on(call_waiting(&channel, rpc, &token, body.clone(), wait));
            if uncontrolled(code) {
                return Err(TestCaseError::fail(format!("{code:?} for {} bytes {body:02x?}", body.len())));
            }
            Ok(())
        });
        if let Err(e) = result {
            failures.push(format!("{}: {e}", rpc.method));
        }
    }
    // Still serving.
    let alive = runtime.block_on(async {
        let read = rpc::GetCaseRequest { case_id: case_id.clone(), min_sequence: None };
        app.query().await.get_case(req(&app.token("dispatcher", STREET), read)).await
    });
    assert!(alive.is_ok(), "the service stopped answering: {alive:?}");
    runtime.block_on(app.finish());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn undecodable_bytes_are_invalid_argument() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(TestApp::spawn());
    let api = Api::load();
    let channel = runtime.block_on(app.channel());
    // A length-delimited field whose length runs past the end: no protobuf parser accepts it.
    let garbage = vec![0x12, 0x7f, 0x01];
    for rpc in &api.rpcs {
        let (token, _) = caller(&app, rpc);
        let wait = std::time::Duration::from_millis(20);
        let (code, _) = runtime.block_on(call_waiting(&channel, rpc, &token, garbage.clone(), wait));
        assert_eq!(code, Code::InvalidArgument, "{}", rpc.method);
    }
    runtime.block_on(app.finish());
}
