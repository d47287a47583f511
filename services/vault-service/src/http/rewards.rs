//! Reward settlement endpoints.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::Date;
use vault_domain::DomainError;
use vault_domain::clock::rfc3339_cst;
use vault_domain::settlement::{ClaimBy, FileReward, ReportIn, Reward, RewardFilter, RewardStatus};
use vault_policy::{Industry, Money, Outcome, QuoteInput, Reporter};
use zeroize::Zeroizing;

use super::dto::{jurisdiction, rfc3339};
use super::error::ApiError;
use super::extract::{Authed, JsonBody, RawJson, parse_json};
use super::{ApiResult, AppState, opened_response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportDto {
    pub pseudonym: String,
    #[serde(default)]
    pub received_at: Option<String>,
    #[serde(default)]
    pub joint_group: Option<String>,
    #[serde(default)]
    pub signatory_order: Option<u32>,
    #[serde(default)]
    pub supervisory_staff: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRewardIn {
    pub case_ref: String,
    pub jurisdiction: String,
    pub verified_on: String,
    pub industry: Industry,
    #[serde(default)]
    pub policy_id: Option<String>,
    pub outcome: Outcome,
    pub reports: Vec<ReportDto>,
}

#[derive(Serialize)]
pub struct AwardView {
    pub pseudonym: String,
    pub amount: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub claimed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
}

#[derive(Serialize)]
pub struct ApprovalView {
    pub principal_id: String,
    pub at: String,
}

#[derive(Serialize)]
pub struct RewardView {
    pub id: String,
    pub case_ref: String,
    pub jurisdiction: String,
    pub status: &'static str,
    pub amount: String,
    pub currency: &'static str,
    pub awards: Vec<AwardView>,
    pub approvals: Vec<ApprovalView>,
    pub approvals_required: u32,
    pub policy: serde_json::Value,
    pub trace: serde_json::Value,
    pub industry: Industry,
    pub verified_on: String,
    pub outcome: Outcome,
    pub filed_by: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_deadline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub extensions: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<serde_json::Value>,
}

impl RewardView {
    pub fn of(r: &Reward) -> Self {
        Self {
            id: r.id.clone(),
            case_ref: r.case_ref.clone(),
            jurisdiction: r.jurisdiction.to_string(),
            status: r.status.as_str(),
            amount: format!("{:.2}", r.amount),
            currency: "CNY",
            awards: r
                .awards
                .iter()
                .map(|a| AwardView {
                    pseudonym: a.pseudonym.clone(),
                    amount: format!("{:.2}", a.amount),
                    reason: a.reason.clone(),
                    claimed: a.claimed_at.is_some(),
                    claimed_at: a.claimed_at.map(rfc3339_cst),
                })
                .collect(),
            approvals: r
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    principal_id: a.principal_id.clone(),
                    at: rfc3339_cst(a.at),
                })
                .collect(),
            approvals_required: r.approvals_required,
            policy: serde_json::json!({"id": r.policy_id, "version": r.policy_version}),
            trace: r.trace.clone(),
            industry: r.input.industry,
            verified_on: r.input.verified_on.to_string(),
            outcome: r.input.outcome.clone(),
            filed_by: r.filed_by.clone(),
            created_at: rfc3339_cst(r.created_at),
            notice_at: r.notice_at.map(rfc3339_cst),
            claim_deadline: r.claim_deadline.map(rfc3339_cst),
            rejection_reason: r.rejection_reason.clone(),
            extensions: r
                .extensions
                .iter()
                .map(|e| {
                    serde_json::json!({"days": e.days, "reason": e.reason,
                        "principal_id": e.principal_id, "at": rfc3339_cst(e.at)})
                })
                .collect(),
            payment: r.payment.as_ref().map(|p| {
                serde_json::json!({"payment_ref": p.payment_ref, "amount": format!("{:.2}", p.amount),
                    "paid_on": p.paid_on, "recorded_by": p.recorded_by, "at": rfc3339_cst(p.at)})
            }),
        }
    }
}

fn date(field: &str, s: &str) -> Result<Date, DomainError> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| DomainError::invalid(field, "must be a date YYYY-MM-DD"))
}

/// What an Idempotency-Key names: this method on this path with this body. Binding the path
/// keeps a key reused on another reward from replaying the first reward's answer.
fn request_hash(path: &str, body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"POST ");
    ctx.update(path.as_bytes());
    ctx.update(b"\n");
    ctx.update(body);
    hex::encode(ctx.finish().as_ref())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().unwrap_or("");
            if (1..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic()) {
                Ok(Some(s.to_owned()))
            } else {
                Err(ApiError::field(
                    StatusCode::BAD_REQUEST,
                    "invalid_header",
                    "Idempotency-Key",
                    "must be 1–128 visible ASCII characters",
                ))
            }
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Runs `f` at most once per (principal, Idempotency-Key): a repeat with the same body gets
/// the first answer; the same key with another body is a 422.
async fn idempotent<F, Fut>(
    s: &AppState,
    actor: &vault_domain::model::Actor,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    f: F,
) -> ApiResult<Response>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ApiResult<(StatusCode, RewardView)>>,
{
    let key = idempotency_key(headers)?;
    let hash = request_hash(path, body);
    if let Some(key) = &key
        && let Some((status, body)) = s.vault.idempotent_replay(actor, key, &hash).await?
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        return Ok(json_response(status, body));
    }
    let (status, view) = f().await?;
    let text = serde_json::to_string(&view).unwrap_or_default();
    if let Some(key) = &key {
        s.vault
            .idempotent_remember(actor, key, &hash, status.as_u16(), &text)
            .await?;
    }
    Ok(json_response(status, text))
}

pub async fn file_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawJson(raw): RawJson,
) -> ApiResult<Response> {
    let parsed: FileRewardIn = parse_json(&raw)?;
    idempotent(&s, &actor, &headers, uri.path(), &raw, || async {
        let j = jurisdiction("jurisdiction", &parsed.jurisdiction)?;
        let verified_on = date("verified_on", &parsed.verified_on)?;
        let mut reports = Vec::with_capacity(parsed.reports.len());
        for (i, r) in parsed.reports.iter().enumerate() {
            reports.push(ReportIn {
                pseudonym: r.pseudonym.clone(),
                received_at: r
                    .received_at
                    .as_deref()
                    .map(|t| rfc3339(&format!("reports[{i}].received_at"), t))
                    .transpose()?,
                joint_group: r.joint_group.clone(),
                signatory_order: r.signatory_order,
                supervisory_staff: r.supervisory_staff.unwrap_or(false),
            });
        }
        let jcode = vault_policy::Jurisdiction::parse(&parsed.jurisdiction)
            .map_err(|_| DomainError::invalid("jurisdiction", "not a 6-digit code"))?;
        let filing = FileReward {
            case_ref: vault_domain::values::CaseRef::parse(&parsed.case_ref)
                .map_err(|e| DomainError::invalid("case_ref", e.reason))?
                .to_string(),
            jurisdiction: j,
            input: QuoteInput {
                jurisdiction: jcode,
                industry: parsed.industry,
                policy_id: parsed.policy_id.clone(),
                verified_on,
                outcome: parsed.outcome.clone(),
                reporter: Reporter {
                    employee_of_reported_unit: false,
                    supervisory_staff: false,
                    anonymous: false,
                },
            },
            reports,
        };
        let r = s.vault.file_reward(&actor, filing).await?;
        Ok((StatusCode::CREATED, RewardView::of(&r)))
    })
    .await
}

pub async fn get_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<RewardView>> {
    Ok(Json(RewardView::of(
        &s.vault.get_reward(&actor, &id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

fn query_err(_: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "unknown or malformed query parameter",
    )
}

pub async fn list_rewards(
    State(s): State<AppState>,
    Authed(actor): Authed,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = q.map_err(query_err)?;
    let filter = RewardFilter {
        status: q
            .status
            .as_deref()
            .map(|st| {
                RewardStatus::parse(st)
                    .ok_or_else(|| DomainError::invalid("status", "not a reward status"))
            })
            .transpose()?,
        jurisdiction: q
            .jurisdiction
            .as_deref()
            .map(|j| jurisdiction("jurisdiction", j))
            .transpose()?,
        from: q.from.as_deref().map(|d| date("from", d)).transpose()?,
        to: q.to.as_deref().map(|d| date("to", d)).transpose()?,
    };
    let list = s.vault.list_rewards(&actor, &filter).await?;
    let views: Vec<RewardView> = list.iter().map(RewardView::of).collect();
    Ok(Json(serde_json::json!({ "rewards": views })))
}

pub async fn approve_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<RewardView>> {
    let r = s.vault.approve_reward(&actor, &id).await?;
    s.wake_notifier.notify_one();
    Ok(Json(RewardView::of(&r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonIn {
    pub reason: String,
}

pub async fn reject_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReasonIn>,
) -> ApiResult<Json<RewardView>> {
    Ok(Json(RewardView::of(
        &s.vault.reject_reward(&actor, &id, &body.reason).await?,
    )))
}

pub async fn cancel_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReasonIn>,
) -> ApiResult<Json<RewardView>> {
    Ok(Json(RewardView::of(
        &s.vault.cancel_reward(&actor, &id, &body.reason).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendIn {
    pub days: u32,
    pub reason: String,
}

pub async fn extend_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ExtendIn>,
) -> ApiResult<Json<RewardView>> {
    Ok(Json(RewardView::of(
        &s.vault
            .extend_reward(&actor, &id, body.days, &body.reason)
            .await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimIn {
    #[serde(default)]
    pub pseudonym: Option<String>,
    #[serde(default)]
    pub identity_checked: Option<bool>,
    #[serde(default)]
    pub claim_code: Option<Zeroizing<String>>,
}

pub async fn claim_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ClaimIn>,
) -> ApiResult<Json<RewardView>> {
    let by = match (body.pseudonym, body.identity_checked, body.claim_code) {
        (Some(p), Some(true), None) => ClaimBy::Pseudonym(p),
        (Some(_), _, None) => {
            return Err(DomainError::invalid(
                "identity_checked",
                "must be true: the case system checks the reporter's ID before claiming",
            )
            .into());
        }
        (None, None, Some(code)) => ClaimBy::ClaimCode(code),
        _ => {
            return Err(DomainError::invalid(
                "claim_code",
                "send either pseudonym with identity_checked, or claim_code",
            )
            .into());
        }
    };
    Ok(Json(RewardView::of(
        &s.vault.claim_reward(&actor, &id, by).await?,
    )))
}

pub async fn payee(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(opened_response(s.vault.release_payee(&actor, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentIn {
    pub payment_ref: String,
    pub amount: Money,
    pub paid_on: String,
}

pub async fn pay_reward(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawJson(raw): RawJson,
) -> ApiResult<Response> {
    let p: PaymentIn = parse_json(&raw)?;
    idempotent(&s, &actor, &headers, uri.path(), &raw, || async {
        let paid_on = date("paid_on", &p.paid_on)?;
        let r = s
            .vault
            .pay_reward(&actor, &id, &p.payment_ref, p.amount, paid_on)
            .await?;
        Ok((StatusCode::CREATED, RewardView::of(&r)))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub group_by: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

pub async fn stats(
    State(s): State<AppState>,
    Authed(actor): Authed,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = q.map_err(query_err)?;
    let from = q.from.as_deref().map(|d| date("from", d)).transpose()?;
    let to = q.to.as_deref().map(|d| date("to", d)).transpose()?;
    let groups = s.vault.reward_stats(&actor, &q.group_by, from, to).await?;
    let groups: Vec<serde_json::Value> = groups
        .into_iter()
        .map(|g| match g.count_sum {
            Some((count, sum)) => {
                serde_json::json!({"key": g.key, "count": count, "sum": format!("{sum:.2}")})
            }
            None => serde_json::json!({"key": g.key, "suppressed": true}),
        })
        .collect();
    Ok(Json(serde_json::json!({ "groups": groups })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OversightQuery {
    #[serde(default)]
    pub within_days: Option<u32>,
    #[serde(default)]
    pub waiting_days: Option<u32>,
}

/// Claim windows closing soon and approvals waiting too long (督办).
pub async fn oversight(
    State(s): State<AppState>,
    Authed(actor): Authed,
    q: Result<Query<OversightQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = q.map_err(query_err)?;
    let within = q.within_days.unwrap_or(7);
    let waiting = q.waiting_days.unwrap_or(15);
    let o = s.vault.reward_oversight(&actor, within, waiting).await?;
    let brief = |r: &Reward| {
        serde_json::json!({
            "id": r.id, "case_ref": r.case_ref, "jurisdiction": r.jurisdiction.to_string(),
            "status": r.status.as_str(), "amount": format!("{:.2}", r.amount),
            "created_at": rfc3339_cst(r.created_at),
            "claim_deadline": r.claim_deadline.map(rfc3339_cst),
        })
    };
    Ok(Json(serde_json::json!({
        "within_days": within,
        "waiting_days": waiting,
        "claim_windows_closing": o.closing.iter().map(brief).collect::<Vec<_>>(),
        "approvals_waiting": o.stale_approvals.iter().map(brief).collect::<Vec<_>>(),
    })))
}
