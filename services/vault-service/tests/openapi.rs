//! The OpenAPI document served at `/openapi.json` against the router: it must be OpenAPI 3.1,
//! document exactly the routes of `ROUTES`, be internally consistent (operation ids, success
//! and 401 answers, resolvable references, the `x-request-id` header, closed request bodies),
//! and list exactly the wire names of the domain's enums. Full schema validation is done with a
//! real validator (`openapi-spec-validator`); this test keeps the document from drifting away
//! from the code.

// An integration test crate: its helpers may panic on a broken document, that is the test.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::collapsible_if
)]

use std::collections::BTreeSet;

use serde_json::Value;
use vault_domain::audit::Action;
use vault_domain::lifecycle::{ErasureStatus, JobStatus};
use vault_domain::model::{DisclosureStatus, PseudonymStatus};
use vault_domain::settlement::RewardStatus;
use vault_domain::values::{Channel, IdentityField, MessageKind, Purpose, Role};
use vault_policy::{AccidentLevel, Industry, OutcomeKind};
use vault_service::http::{OPENAPI, ROUTES};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The routes that need no token (every other route answers 401 without one).
const UNAUTHENTICATED: [&str; 6] = [
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/metrics",
    "/v1/audit/public-key",
    "/v1/receipts/public-key",
];

fn doc() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is not valid JSON")
}

/// Every `(method, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (key, op) in item {
            if METHODS.contains(&key.as_str()) {
                out.push((key.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// Resolves a local `$ref` (`#/components/...`), following chains.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("non-local $ref {r}"));
                v = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("unresolvable $ref {r}"));
            }
            None => return v,
        }
    }
    panic!("$ref chain too long");
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    if let Some(s) = child.as_str() {
                        out.push(s.to_owned());
                    }
                }
                collect_refs(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

#[test]
fn document_is_json_and_openapi_3_1() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(
        version.starts_with("3.1"),
        "openapi is {version}, not 3.1.x"
    );
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    let description = doc["info"]["description"].as_str().unwrap_or("");
    for convention in ["Money", "RFC 3339", "+08:00", "request_id", "404"] {
        assert!(
            description.contains(convention),
            "info.description does not mention {convention}"
        );
    }
}

#[test]
fn paths_are_exactly_the_routes_served() {
    let doc = doc();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(served.len(), ROUTES.len(), "ROUTES lists a route twice");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {not_served:?}"
    );
}

#[test]
fn every_operation_has_an_id_a_success_and_the_auth_answers() {
    let doc = doc();
    let global_security = doc["security"].as_array().cloned().unwrap_or_default();
    assert!(
        !global_security.is_empty(),
        "the document must require a bearer token by default"
    );
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    for requirement in &global_security {
        for name in requirement
            .as_object()
            .expect("a requirement object")
            .keys()
        {
            let scheme = &schemes[name];
            assert_eq!(scheme["type"], "http", "{name}");
            assert_eq!(scheme["scheme"], "bearer", "{name}");
        }
    }

    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let what = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what} has no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        assert!(op["summary"].is_string(), "{what} has no summary");
        assert!(op["description"].is_string(), "{what} has no description");

        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{what} has no responses"));
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what} documents no 2xx answer"
        );

        let unauthenticated = UNAUTHENTICATED.contains(&path.as_str());
        let security = op.get("security").and_then(Value::as_array);
        if unauthenticated {
            assert_eq!(
                security.map(Vec::len),
                Some(0),
                "{what} needs no token: it must say `security: []`"
            );
        } else {
            assert!(
                security.is_none_or(|s| !s.is_empty()),
                "{what} needs a token but declares no security"
            );
            assert!(responses.contains_key("401"), "{what} documents no 401");
            assert!(responses.contains_key("503"), "{what} documents no 503");
        }

        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{what} {status} has no description"
            );
            assert!(
                response["headers"].get("x-request-id").is_some(),
                "{what} {status} does not document the x-request-id header"
            );
            if status.starts_with('4') || status.starts_with('5') {
                // Error answers use the one error shape (readyz's 503 is its own report).
                if path != "/readyz" {
                    let schema = &response["content"]["application/json"]["schema"];
                    let mut refs = Vec::new();
                    collect_refs(schema, &mut refs);
                    assert!(
                        refs.iter().any(|r| r == "#/components/schemas/Error"),
                        "{what} {status} does not use the Error schema"
                    );
                }
            }
        }
    }
}

#[test]
fn request_bodies_are_closed_json_objects() {
    let doc = doc();
    for (method, path, op) in operations(&doc) {
        let Some(body) = op.get("requestBody") else {
            continue;
        };
        let what = format!("{} {path}", method.to_uppercase());
        let body = resolve(&doc, body);
        assert_eq!(body["required"], true, "{what}: the body is required");
        let content = body["content"].as_object().expect("requestBody.content");
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/json"],
            "{what} takes JSON only"
        );
        let schema = resolve(&doc, &content["application/json"]["schema"]);
        assert_eq!(schema["type"], "object", "{what}");
        assert_eq!(
            schema["additionalProperties"], false,
            "{what}: unknown fields are refused, so the schema must be closed"
        );
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().expect("required names are strings");
            assert!(
                schema["properties"].get(name).is_some(),
                "{what}: required field {name} is not a property"
            );
        }
    }
}

#[test]
fn path_parameters_match_the_templates() {
    let doc = doc();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let declared: BTreeSet<&str> = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .map(|p| resolve(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("parameter name"))
                .collect();
            assert_eq!(template, declared, "{method} {path}: path parameters");
        }
    }
}

#[test]
fn disclosure_open_documents_json_and_age() {
    let doc = doc();
    let ok = resolve(
        &doc,
        &doc["paths"]["/v1/disclosures/{id}/open"]["post"]["responses"]["200"],
    );
    let content = ok["content"].as_object().expect("content");
    assert!(content.contains_key("application/json"));
    assert!(content.contains_key("application/age"));
}

#[test]
fn every_ref_resolves() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("$ref {r} is not local to the document"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }
}

/// The `enum` of `components/schemas/{name}`.
fn doc_enum(doc: &Value, name: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("components.schemas.{name} has no enum"))
        .iter()
        .map(|v| v.as_str().expect("enum values are strings").to_owned())
        .collect()
}

fn wire<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> BTreeSet<String> {
    all.iter().map(|v| as_str(*v).to_owned()).collect()
}

/// Every variant of an enum without an `ALL` list. The exhaustive `match` makes a new variant
/// fail to compile here until it is listed — and then this test fails until the document
/// lists it too.
macro_rules! every {
    ($ty:ident: $($variant:ident),+ $(,)?) => {{
        fn _exhaustive(v: $ty) {
            match v {
                $($ty::$variant)|+ => {}
            }
        }
        [$($ty::$variant),+]
    }};
}

#[test]
fn enums_are_exactly_the_domain_wire_names() {
    let doc = doc();
    assert_eq!(doc_enum(&doc, "Role"), wire(&Role::ALL, |v| v.as_str()));
    assert_eq!(
        doc_enum(&doc, "Channel"),
        wire(&Channel::ALL, |v| v.as_str())
    );
    assert_eq!(
        doc_enum(&doc, "Purpose"),
        wire(&Purpose::ALL, |v| v.as_str())
    );
    assert_eq!(
        doc_enum(&doc, "MessageKind"),
        wire(&MessageKind::ALL, |v| v.as_str())
    );
    assert_eq!(
        doc_enum(&doc, "IdentityField"),
        wire(&IdentityField::ALL, |v| v.as_str())
    );
    assert_eq!(
        doc_enum(&doc, "OutcomeKind"),
        wire(OutcomeKind::ALL, |v| v.as_str())
    );
    assert_eq!(
        doc_enum(&doc, "AccidentLevel"),
        wire(AccidentLevel::ALL, |v| v.as_str())
    );
    assert_eq!(
        doc_enum(&doc, "Industry"),
        wire(Industry::ALL, |v| v.as_str())
    );
    let pseudonym = every!(PseudonymStatus: Active, Revoked, Erased);
    assert_eq!(
        doc_enum(&doc, "PseudonymStatus"),
        wire(&pseudonym, PseudonymStatus::as_str)
    );
    let disclosure = every!(DisclosureStatus: Pending, Approved, Denied, Opened, Expired);
    assert_eq!(
        doc_enum(&doc, "DisclosureStatus"),
        wire(&disclosure, DisclosureStatus::as_str)
    );
    let reward = every!(
        RewardStatus: PendingApproval,
        Approved,
        Claimed,
        Paid,
        Rejected,
        Expired,
        Cancelled,
    );
    assert_eq!(
        doc_enum(&doc, "RewardStatus"),
        wire(&reward, RewardStatus::as_str)
    );
    let job = every!(JobStatus: Queued, Running, Completed, Failed);
    assert_eq!(doc_enum(&doc, "JobStatus"), wire(&job, JobStatus::as_str));
    for v in job {
        assert_eq!(JobStatus::parse(v.as_str()), Some(v));
    }
    let erasure = every!(ErasureStatus: Pending, Denied, Completed);
    assert_eq!(
        doc_enum(&doc, "ErasureStatus"),
        wire(&erasure, ErasureStatus::as_str)
    );
    for v in erasure {
        assert_eq!(ErasureStatus::parse(v.as_str()), Some(v));
    }
    let actions = every!(
        Action: StoreInitialised,
        ReporterSealed,
        PseudonymHandedOff,
        PseudonymRotated,
        MessageRelayed,
        DisclosureRequested,
        DisclosureApproved,
        DisclosureDenied,
        DisclosureOpened,
        PrincipalCreated,
        PrincipalRevoked,
        AccessDenied,
        LeakTrace,
        PolicyLoaded,
        RewardFiled,
        RewardApproved,
        RewardRejected,
        RewardExtended,
        RewardClaimed,
        PayeeReleased,
        RewardPaid,
        RewardExpired,
        ReceiptIssued,
        RewardCancelled,
        KeyRotated,
        KeyRetired,
        KeysRewrapStarted,
        KeysRewrapped,
        ErasureRequested,
        ErasureApproved,
        ErasureDenied,
        ReporterErased,
        CaseClosed,
    );
    assert_eq!(
        doc_enum(&doc, "AuditAction"),
        wire(&actions, Action::as_str)
    );
    // The serde names (what the events endpoint shows) are the same strings.
    for a in actions {
        assert_eq!(serde_json::to_value(a).expect("serialise"), a.as_str());
    }
}
