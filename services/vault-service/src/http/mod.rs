//! The HTTP surface. Handlers extract, make one domain call, and shape the answer: no SQL and
//! no cryptography here.

mod admin;
mod context;
pub mod dto;
pub mod error;
mod extract;
mod rewards;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use secrecy::ExposeSecret;
use vault_crypto::random::RandomSource;
use vault_domain::Vault;
use vault_domain::clock::Clock;
use vault_domain::vault::{DisclosureRequest, OpenedDisclosure, SealRequest};
use vault_storage::SqlStore;

use dto::*;
use error::ApiError;
use extract::{Authed, JsonBody};

pub use context::current_request_id;
pub use extract::parse_json;

/// What handlers share: a handle, so the copy axum hands every request and every
/// extractor is one reference count, not a copy of every field (the field-by-field clone and
/// drop were 5 % of the CPU of a pseudonym lookup under load).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    /// Shares `inner` with every request.
    pub fn new(inner: AppStateInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct AppStateInner {
    /// The use cases.
    pub vault: Vault,
    /// The store (readiness).
    pub store: SqlStore,
    /// The keys (readiness).
    pub keys: Arc<dyn vault_domain::ports::KeyProvider>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness (request ids).
    pub rng: Arc<dyn RandomSource>,
    /// Wakes the delivery worker when a message is queued.
    pub wake_notifier: Arc<tokio::sync::Notify>,
    /// Wakes the job runner when a job is queued.
    pub wake_jobs: Arc<tokio::sync::Notify>,
    /// Whether this replica holds the leader lease (runs checkpoints and jobs).
    pub leader: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    fn new_request_id(&self) -> String {
        vault_crypto::ids::new_id(self.rng.as_ref(), "req").unwrap_or_else(|_| "req_unknown".into())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The OpenAPI document, kept beside the code and checked against the router by tests.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every (method, path) the router serves; a test checks `/openapi.json` documents exactly
/// these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
    ("post", "/v1/principals"),
    ("delete", "/v1/principals/{id}"),
    ("post", "/v1/reporters"),
    ("get", "/v1/pseudonyms/{p}"),
    ("post", "/v1/pseudonyms/{p}/handoff"),
    ("post", "/v1/pseudonyms/{p}/rotate"),
    ("post", "/v1/pseudonyms/{p}/messages"),
    ("post", "/v1/disclosures"),
    ("get", "/v1/disclosures/{id}"),
    ("post", "/v1/disclosures/{id}/approve"),
    ("post", "/v1/disclosures/{id}/deny"),
    ("post", "/v1/disclosures/{id}/open"),
    ("get", "/v1/audit/events"),
    ("get", "/v1/audit/checkpoint"),
    ("post", "/v1/audit/checkpoint"),
    ("get", "/v1/audit/public-key"),
    ("get", "/v1/audit/proofs/inclusion"),
    ("get", "/v1/audit/proofs/consistency"),
    ("post", "/v1/audit/leak-trace"),
    ("post", "/v1/rewards/quote"),
    ("get", "/v1/policies"),
    ("get", "/v1/policies/{id}"),
    ("post", "/v1/rewards"),
    ("get", "/v1/rewards"),
    ("get", "/v1/rewards/{id}"),
    ("post", "/v1/rewards/{id}/approve"),
    ("post", "/v1/rewards/{id}/reject"),
    ("post", "/v1/rewards/{id}/cancel"),
    ("post", "/v1/rewards/{id}/claims"),
    ("post", "/v1/rewards/{id}/extend"),
    ("get", "/v1/rewards/{id}/payee"),
    ("post", "/v1/rewards/{id}/payments"),
    ("get", "/v1/stats/rewards"),
    ("get", "/v1/oversight/rewards"),
    ("post", "/v1/receipts"),
    ("get", "/v1/receipts/public-key"),
    ("get", "/v1/admin/keys"),
    ("post", "/v1/admin/keys/rotate"),
    ("post", "/v1/admin/keys/rewrap"),
    ("post", "/v1/admin/keys/{version}/retire"),
    ("get", "/v1/admin/jobs/{id}"),
    ("post", "/v1/erasures"),
    ("get", "/v1/erasures/{id}"),
    ("post", "/v1/erasures/{id}/approve"),
    ("post", "/v1/erasures/{id}/deny"),
    ("post", "/v1/pseudonyms/{p}/close"),
];

/// Every route of the contract.
pub fn router(state: AppState, max_body: usize, body_timeout: std::time::Duration) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/principals", post(create_principal))
        .route("/v1/principals/{id}", delete(revoke_principal))
        .route("/v1/reporters", post(seal))
        .route("/v1/pseudonyms/{p}", get(get_pseudonym))
        .route("/v1/pseudonyms/{p}/handoff", post(handoff))
        .route("/v1/pseudonyms/{p}/rotate", post(rotate))
        .route("/v1/pseudonyms/{p}/messages", post(relay_message))
        .route("/v1/disclosures", post(request_disclosure))
        .route("/v1/disclosures/{id}", get(get_disclosure))
        .route("/v1/disclosures/{id}/approve", post(approve_disclosure))
        .route("/v1/disclosures/{id}/deny", post(deny_disclosure))
        .route("/v1/disclosures/{id}/open", post(open_disclosure))
        .route("/v1/audit/events", get(audit_events))
        .route(
            "/v1/audit/checkpoint",
            get(latest_checkpoint).post(sign_checkpoint),
        )
        .route("/v1/audit/public-key", get(public_key))
        .route("/v1/audit/proofs/inclusion", get(inclusion_proof))
        .route("/v1/audit/proofs/consistency", get(consistency_proof))
        .route("/v1/audit/leak-trace", post(leak_trace))
        .route("/v1/rewards/quote", post(quote))
        .route("/v1/policies", get(list_policies))
        .route("/v1/policies/{id}", get(get_policy))
        .route(
            "/v1/rewards",
            post(rewards::file_reward).get(rewards::list_rewards),
        )
        .route("/v1/rewards/{id}", get(rewards::get_reward))
        .route("/v1/rewards/{id}/approve", post(rewards::approve_reward))
        .route("/v1/rewards/{id}/reject", post(rewards::reject_reward))
        .route("/v1/rewards/{id}/cancel", post(rewards::cancel_reward))
        .route("/v1/rewards/{id}/claims", post(rewards::claim_reward))
        .route("/v1/rewards/{id}/extend", post(rewards::extend_reward))
        .route("/v1/rewards/{id}/payee", get(rewards::payee))
        .route("/v1/rewards/{id}/payments", post(rewards::pay_reward))
        .route("/v1/stats/rewards", get(rewards::stats))
        .route("/v1/oversight/rewards", get(rewards::oversight))
        .route("/v1/receipts", post(receipt))
        .route("/v1/receipts/public-key", get(statement_key))
        .route("/v1/admin/keys", get(admin::key_status))
        .route("/v1/admin/keys/rotate", post(admin::rotate_keys))
        .route("/v1/admin/keys/rewrap", post(admin::rewrap_keys))
        .route("/v1/admin/keys/{version}/retire", post(admin::retire_key))
        .route("/v1/admin/jobs/{id}", get(admin::get_job))
        .route("/v1/erasures", post(admin::request_erasure))
        .route("/v1/erasures/{id}", get(admin::get_erasure))
        .route("/v1/erasures/{id}/approve", post(admin::approve_erasure))
        .route("/v1/erasures/{id}/deny", post(admin::deny_erasure))
        .route("/v1/pseudonyms/{p}/close", post(admin::close_case))
        .route_layer(middleware::from_fn(context::record_route))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(max_body))
        // A declared Content-Length over the limit is refused before any of it is read.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        // A body trickled in to hold a connection open is cut off (408): a deadline from the
        // request's arrival, not an idle timer that every byte resets.
        .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
            body_timeout,
        ))
        // A bug must not drop the connection: answer (the error shape is added outside) and
        // log it. Panics are still bugs; the lints and tests keep them out.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            context::request_context,
        ))
        .with_state(state)
}

async fn fallback() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Response {
    use vault_domain::ports::Store as _;
    let store_ok = s.store.ping().await.is_ok();
    let keys_ok = s.keys.check().is_ok();
    // Not ready while an append to the access trail would fail: every protected action
    // would answer 503, so traffic should go elsewhere until the fault clears.
    let trail_ok = store_ok && s.store.probe_trail().await.is_ok();
    let ready = store_ok && keys_ok && trail_ok;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "store": if store_ok { "ok" } else { "unavailable" },
            "keyring": if keys_ok { "ok" } else { "unavailable" },
            "access_trail": if trail_ok { "ok" } else { "unavailable" },
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn create_principal(
    State(s): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<NewPrincipal>,
) -> ApiResult<(StatusCode, Json<PrincipalView>)> {
    let j = jurisdiction("jurisdiction", &body.jurisdiction)?;
    let created = s
        .vault
        .create_principal(
            Some(&actor),
            &body.name,
            body.role,
            j,
            body.age_recipient.as_deref(),
        )
        .await?;
    let token = created.token.expose_secret().to_owned();
    Ok((
        StatusCode::CREATED,
        Json(PrincipalView::of(&created.principal, Some(token))),
    ))
}

async fn revoke_principal(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.vault.revoke_principal(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn seal(
    State(s): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<SealIn>,
) -> ApiResult<(StatusCode, Json<SealOut>)> {
    let req = SealRequest {
        jurisdiction: jurisdiction("jurisdiction", &body.jurisdiction)?,
        case_ref: vault_domain::values::CaseRef::parse(&body.case_ref)
            .map_err(|e| vault_domain::DomainError::invalid("case_ref", e.reason))?,
        received_at: rfc3339("received_at", &body.received_at)?,
        channel: body.channel,
        employee_of_reported_unit: body.employee_of_reported_unit,
        identity: body.identity.as_ref().map(IdentityIn::parse).transpose()?,
    };
    let out = s.vault.seal(&actor, req).await?;
    Ok((
        StatusCode::CREATED,
        Json(SealOut {
            pseudonym: out.pseudonym.pseudonym.clone(),
            jurisdiction: out.pseudonym.jurisdiction.to_string(),
            case_ref: out.pseudonym.case_ref.to_string(),
            anonymous: out.pseudonym.anonymous,
            reporter_seen_before: out.reporter_seen_before,
            prior_case_refs: out.prior_case_refs,
            // Shown once, here; only its Argon2id hash is stored.
            claim_code: out.claim_code.map(|c| c.expose_secret().to_owned()),
        }),
    ))
}

async fn get_pseudonym(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(p): Path<String>,
) -> ApiResult<Json<PseudonymView>> {
    let rec = s.vault.get_pseudonym(&actor, &p).await?;
    Ok(Json(PseudonymView::of(&rec)))
}

async fn handoff(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(p): Path<String>,
    JsonBody(body): JsonBody<HandoffIn>,
) -> ApiResult<(StatusCode, Json<PseudonymView>)> {
    let (to, case_ref) = body.parse()?;
    let rec = s.vault.handoff(&actor, &p, to, case_ref).await?;
    Ok((StatusCode::CREATED, Json(PseudonymView::of(&rec))))
}

async fn rotate(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(p): Path<String>,
) -> ApiResult<(StatusCode, Json<PseudonymView>)> {
    let rec = s.vault.rotate(&actor, &p).await?;
    Ok((StatusCode::CREATED, Json(PseudonymView::of(&rec))))
}

async fn relay_message(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(p): Path<String>,
    JsonBody(body): JsonBody<MessageIn>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let id = s
        .vault
        .relay_message(&actor, &p, body.kind, &body.body)
        .await?;
    s.wake_notifier.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageOut {
            id,
            status: "queued",
        }),
    ))
}

async fn request_disclosure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<DisclosureIn>,
) -> ApiResult<(StatusCode, Json<DisclosureView>)> {
    let d = s
        .vault
        .request_disclosure(
            &actor,
            DisclosureRequest {
                pseudonym: body.pseudonym,
                purpose: body.purpose,
                justification: body.justification,
                fields: body.fields,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DisclosureView::of(&d, s.clock.now())),
    ))
}

async fn get_disclosure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<DisclosureView>> {
    let d = s.vault.get_disclosure(&actor, &id).await?;
    Ok(Json(DisclosureView::of(&d, s.clock.now())))
}

async fn approve_disclosure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionIn>,
) -> ApiResult<Json<DisclosureView>> {
    let d = s
        .vault
        .decide_disclosure(&actor, &id, true, &body.comment)
        .await?;
    Ok(Json(DisclosureView::of(&d, s.clock.now())))
}

async fn deny_disclosure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionIn>,
) -> ApiResult<Json<DisclosureView>> {
    let d = s
        .vault
        .decide_disclosure(&actor, &id, false, &body.comment)
        .await?;
    Ok(Json(DisclosureView::of(&d, s.clock.now())))
}

async fn open_disclosure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    // By the time the domain returns, the access event is committed; only now do bytes go out.
    Ok(opened_response(s.vault.open_disclosure(&actor, &id).await?))
}

/// Identity data on its way out: JSON, or `application/age` to the caller's recipient;
/// never cached.
pub(crate) fn opened_response(opened: OpenedDisclosure) -> Response {
    let no_store = (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match opened {
        OpenedDisclosure::Json(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                ),
                no_store,
            ],
            body.to_vec(),
        )
            .into_response(),
        OpenedDisclosure::Age(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/age"),
                ),
                no_store,
            ],
            body,
        )
            .into_response(),
    }
}

async fn audit_events(
    State(s): State<AppState>,
    Authed(actor): Authed,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<EventsOut>> {
    let Query(q) = q.map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "start and limit must be non-negative integers",
        )
    })?;
    let (events, tree_size) = s
        .vault
        .events(&actor, q.start.unwrap_or(0), q.limit.unwrap_or(100))
        .await?;
    use base64::Engine as _;
    Ok(Json(EventsOut {
        events: events
            .into_iter()
            .map(|(event, leaf)| EventOut {
                index: event.index,
                leaf: base64::engine::general_purpose::STANDARD.encode(&leaf),
                event,
            })
            .collect(),
        tree_size,
    }))
}

fn text(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn latest_checkpoint(
    State(s): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Response> {
    Ok(text(s.vault.latest_checkpoint(&actor).await?))
}

async fn sign_checkpoint(State(s): State<AppState>, Authed(actor): Authed) -> ApiResult<Response> {
    Ok(text(s.vault.make_checkpoint(Some(&actor)).await?))
}

async fn public_key(State(s): State<AppState>) -> Response {
    text(format!("{}\n", s.vault.log_public_key()))
}

fn query_err(_: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        "the query parameters must be non-negative integers",
    )
}

fn b64(hashes: &[[u8; 32]]) -> Vec<String> {
    use base64::Engine as _;
    hashes
        .iter()
        .map(|h| base64::engine::general_purpose::STANDARD.encode(h))
        .collect()
}

async fn inclusion_proof(
    State(s): State<AppState>,
    Authed(actor): Authed,
    q: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<InclusionOut>> {
    let Query(q) = q.map_err(query_err)?;
    let proof = s
        .vault
        .inclusion_proof(&actor, q.index, q.tree_size)
        .await?;
    Ok(Json(InclusionOut {
        index: q.index,
        tree_size: q.tree_size,
        hashes: b64(&proof.hashes),
    }))
}

async fn consistency_proof(
    State(s): State<AppState>,
    Authed(actor): Authed,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ConsistencyOut>> {
    let Query(q) = q.map_err(query_err)?;
    let proof = s.vault.consistency_proof(&actor, q.first, q.second).await?;
    Ok(Json(ConsistencyOut {
        first: q.first,
        second: q.second,
        hashes: b64(&proof.hashes),
    }))
}

async fn leak_trace(
    State(s): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<LeakTraceIn>,
) -> ApiResult<Json<LeakTraceOut>> {
    let matches = s.vault.leak_trace(&actor, body.field, &body.value).await?;
    Ok(Json(LeakTraceOut {
        matches: matches.into_iter().map(LeakMatchOut::of).collect(),
    }))
}

async fn quote(
    State(s): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<vault_policy::QuoteInput>,
) -> ApiResult<Json<vault_policy::Quote>> {
    Ok(Json(s.vault.quote(&actor, &body).await?))
}

fn policy_json(p: &vault_policy::Policy, with_text: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("version".into(), p.version().into());
        if with_text {
            obj.insert("text".into(), p.source_text().into());
        }
    }
    v
}

async fn list_policies(
    State(s): State<AppState>,
    Authed(_actor): Authed,
) -> Json<serde_json::Value> {
    let list: Vec<_> = s
        .vault
        .policies()
        .into_iter()
        .map(|p| policy_json(p, false))
        .collect();
    Json(serde_json::json!({ "policies": list }))
}

async fn get_policy(
    State(s): State<AppState>,
    Authed(_actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(policy_json(s.vault.policy(&id)?, true)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptIn {
    pseudonym: String,
    #[serde(default)]
    claim_code: Option<zeroize::Zeroizing<String>>,
}

async fn receipt(
    State(s): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<ReceiptIn>,
) -> ApiResult<Json<vault_domain::receipts::Receipt>> {
    Ok(Json(
        s.vault
            .receipt(
                &actor,
                &body.pseudonym,
                body.claim_code.as_deref().map(|c| c.as_str()),
            )
            .await?,
    ))
}

async fn statement_key(State(s): State<AppState>) -> Response {
    text(format!("{}\n", s.vault.statement_public_key()))
}

/// Prometheus text exposition: counts only, never an identifier.
async fn metrics(State(s): State<AppState>) -> Response {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP rv_up Whether the service answers.\n# TYPE rv_up gauge\nrv_up 1"
    );
    if let Ok(head) = s.vault.tree_head().await {
        let _ = writeln!(
            out,
            "# HELP rv_audit_tree_size Events in the access trail.\n# TYPE rv_audit_tree_size gauge\nrv_audit_tree_size {}",
            head.size
        );
    }
    if let Ok(g) = s.vault.settlement_gauges().await {
        let _ = writeln!(
            out,
            "# HELP rv_rewards Rewards by status.\n# TYPE rv_rewards gauge"
        );
        for (status, n) in &g.by_status {
            let _ = writeln!(out, "rv_rewards{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP rv_reward_claim_windows_closing Approved rewards whose claim window closes within 7 days.\n# TYPE rv_reward_claim_windows_closing gauge\nrv_reward_claim_windows_closing {}",
            g.closing_within_7_days
        );
        let _ = writeln!(
            out,
            "# HELP rv_reward_approvals_waiting Rewards waiting for approval more than 15 days (督办).\n# TYPE rv_reward_approvals_waiting gauge\nrv_reward_approvals_waiting {}",
            g.approvals_waiting_over_15_days
        );
    }
    if let Ok(Some(age)) = s.vault.checkpoint_age().await {
        let _ = writeln!(
            out,
            "# HELP rv_audit_checkpoint_age_seconds Seconds since the newest signed checkpoint of the access trail.\n# TYPE rv_audit_checkpoint_age_seconds gauge\nrv_audit_checkpoint_age_seconds {}",
            age.whole_seconds()
        );
    }
    // Key versions in use: envelopes per KEK version, and the active version.
    if let Ok(k) = s.vault.key_status(None).await {
        let _ = writeln!(
            out,
            "# HELP rv_key_records Envelopes wrapped under each KEK version.\n# TYPE rv_key_records gauge"
        );
        for v in k.versions.iter().filter(|v| !v.retired || v.records > 0) {
            let _ = writeln!(
                out,
                "rv_key_records{{version=\"{}\"}} {}",
                v.version, v.records
            );
        }
        let _ = writeln!(
            out,
            "# HELP rv_key_active_version The KEK version new envelopes use.\n# TYPE rv_key_active_version gauge\nrv_key_active_version {}",
            k.active_version
        );
    }
    let _ = writeln!(
        out,
        "# HELP rv_leader Whether this replica holds the leader lease (signs checkpoints, runs jobs).\n# TYPE rv_leader gauge\nrv_leader {}",
        u8::from(s.leader.load(std::sync::atomic::Ordering::Acquire))
    );
    // Below: request latency, disclosures and trail appends (counted through the `metrics`
    // facade), then the process basics.
    crate::telemetry::render_metrics(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}
