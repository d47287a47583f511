//! Keys, jobs, erasure and case closure: thin handlers over the lifecycle use cases.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::Date;
use vault_domain::DomainError;
use vault_domain::clock::rfc3339_cst;
use vault_domain::lifecycle::{Erasure, Job, KeyStatus};

use super::dto::{DecisionIn, DecisionView};
use super::extract::{Authed, JsonBody};
use super::{ApiResult, AppState};

#[derive(Serialize)]
pub struct KeyVersionView {
    pub version: u32,
    pub created_at: String,
    pub records: u64,
    pub retired: bool,
}

#[derive(Serialize)]
pub struct KeyStatusView {
    pub provider: &'static str,
    pub active_version: u32,
    pub versions: Vec<KeyVersionView>,
}

impl KeyStatusView {
    pub fn of(k: &KeyStatus) -> Self {
        Self {
            provider: k.provider,
            active_version: k.active_version,
            versions: k
                .versions
                .iter()
                .map(|v| KeyVersionView {
                    version: v.version,
                    created_at: rfc3339_cst(v.created_at),
                    records: v.records,
                    retired: v.retired,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub status: &'static str,
    pub requested_by: String,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JobView {
    pub fn of(j: &Job) -> Self {
        Self {
            id: j.id.clone(),
            kind: j.kind.clone(),
            status: j.status.as_str(),
            requested_by: j.requested_by.clone(),
            total: j.total,
            done: j.done,
            failed: j.failed,
            created_at: rfc3339_cst(j.created_at),
            updated_at: rfc3339_cst(j.updated_at),
            finished_at: j.finished_at.map(rfc3339_cst),
            error: j.error.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct ErasureView {
    pub id: String,
    pub pseudonym: String,
    pub status: &'static str,
    pub reason: String,
    pub justification: String,
    pub requested_by: String,
    pub created_at: String,
    pub approvals_required: u32,
    pub approvals: Vec<DecisionView>,
    pub denials: Vec<DecisionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

impl ErasureView {
    pub fn of(e: &Erasure) -> Self {
        let view = |approve: bool| {
            e.decisions
                .iter()
                .filter(|x| x.approve == approve)
                .map(|x| DecisionView {
                    principal_id: x.principal_id.clone(),
                    at: rfc3339_cst(x.at),
                    comment: x.comment.clone(),
                })
                .collect()
        };
        Self {
            id: e.id.clone(),
            pseudonym: e.pseudonym.clone(),
            status: e.status.as_str(),
            reason: e.reason.clone(),
            justification: e.justification.clone(),
            requested_by: e.requester_id.clone(),
            created_at: rfc3339_cst(e.created_at),
            approvals_required: e.approvals_required,
            approvals: view(true),
            denials: view(false),
            completed_at: e.completed_at.map(rfc3339_cst),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureIn {
    pub pseudonym: String,
    pub justification: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseCaseIn {
    pub closed_on: String,
}

pub async fn key_status(
    State(s): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Json<KeyStatusView>> {
    let k = s.vault.key_status(Some(&actor)).await?;
    Ok(Json(KeyStatusView::of(&k)))
}

pub async fn rotate_keys(
    State(s): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let vault = s.vault.clone();
    let version = vault.rotate_keys(Some(&actor)).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "active_version": version })),
    ))
}

pub async fn rewrap_keys(
    State(s): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let job = s.vault.start_rewrap(Some(&actor)).await?;
    // The leader runs it; wake it rather than wait for its next poll.
    s.wake_jobs.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(
            serde_json::json!({ "job_id": job.id, "status": job.status.as_str(), "total": job.total }),
        ),
    ))
}

pub async fn retire_key(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(version): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let version: u32 = version
        .parse()
        .map_err(|_| DomainError::invalid("version", "must be a key version number"))?;
    s.vault.retire_key(Some(&actor), version).await?;
    Ok(Json(
        serde_json::json!({ "version": version, "retired": true }),
    ))
}

pub async fn get_job(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let j = s.vault.job(&actor, &id).await?;
    Ok(Json(JobView::of(&j)))
}

pub async fn request_erasure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<ErasureIn>,
) -> ApiResult<(StatusCode, Json<ErasureView>)> {
    let e = s
        .vault
        .request_erasure(&actor, &body.pseudonym, &body.justification)
        .await?;
    Ok((StatusCode::CREATED, Json(ErasureView::of(&e))))
}

pub async fn get_erasure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<ErasureView>> {
    let e = s.vault.get_erasure(&actor, &id).await?;
    Ok(Json(ErasureView::of(&e)))
}

pub async fn approve_erasure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionIn>,
) -> ApiResult<Json<ErasureView>> {
    let e = s
        .vault
        .decide_erasure(&actor, &id, true, &body.comment)
        .await?;
    Ok(Json(ErasureView::of(&e)))
}

pub async fn deny_erasure(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionIn>,
) -> ApiResult<Json<ErasureView>> {
    let e = s
        .vault
        .decide_erasure(&actor, &id, false, &body.comment)
        .await?;
    Ok(Json(ErasureView::of(&e)))
}

pub async fn close_case(
    State(s): State<AppState>,
    Authed(actor): Authed,
    Path(p): Path<String>,
    JsonBody(body): JsonBody<CloseCaseIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let on = Date::parse(
        &body.closed_on,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| DomainError::invalid("closed_on", "must be a date YYYY-MM-DD"))?;
    let on = s.vault.close_case(&actor, &p, on).await?;
    Ok(Json(
        serde_json::json!({ "pseudonym": p, "case_closed_on": on.to_string() }),
    ))
}
