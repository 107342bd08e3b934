//! The admin API for API keys, behind the master key: the same data `opengateway keys` shows.
//!
//! - `POST /admin/keys` creates a key and returns its secret (the only time it is shown);
//! - `GET /admin/keys`, `GET /admin/keys/{id}`: keys with their usage from the ledger;
//! - `PATCH /admin/keys/{id}`: name and limits (`null` removes a limit);
//! - `DELETE /admin/keys/{id}` or `POST /admin/keys/{id}/revoke`: revokes (the row stays, so
//!   usage stays attributable).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use opengateway::ErrorKind;
use opengateway::accounting::BudgetPeriod;
use opengateway::keys::{KeyError, KeyLimits, KeyPatch};
use serde::Deserialize;

use crate::admin::authorize;
use crate::error::ApiError;
use crate::routes::{AppState, parse_json};

/// The body of `POST /admin/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A name to recognise the key by.
    pub name: String,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Spending cap in USD.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// `total` (default), `day` or `month`.
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    /// Models the key may use (empty: every model).
    #[serde(default)]
    pub models: Vec<String>,
}

/// A key-store failure as an HTTP answer.
pub(crate) fn store_error(e: KeyError) -> ApiError {
    match e {
        KeyError::NotFound(id) => ApiError::new(
            ErrorKind::NotFound,
            format!("No API key has the id `{id}`."),
        ),
        KeyError::Invalid { field, message } => ApiError::invalid(Some(field), message),
        KeyError::Store(detail) => {
            tracing::error!(error = %detail, "key store unavailable");
            ApiError::new(
                ErrorKind::ServiceUnavailable,
                "The key store is unavailable; try again later.",
            )
        }
        other => ApiError::new(ErrorKind::BadRequest, other.to_string()),
    }
}

/// `POST /admin/keys`.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let new: NewKey = parse_json(&headers, body)?;
    let limits = KeyLimits {
        rpm: new.rpm,
        tpm: new.tpm,
        budget_usd: new.budget_usd,
        budget_period: new.budget_period,
        models: new.models,
    };
    let name = new.name;
    let created = state
        .keys
        .run(move |s| s.create(&name, limits))
        .await
        .map_err(store_error)?;
    tracing::info!(key = %created.key.id, prefix = %created.key.prefix, "API key created (admin API)");
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Keys report their requests, spend and last use from the ledger's table: what the ledger has
/// queued (settled records, held pending ones) is written first, so every request answered
/// before this one counts.
async fn ledger_written(state: &AppState) {
    state.gateway.flush().await;
}

/// `GET /admin/keys`.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    ledger_written(&state).await;
    let keys = state.keys.run(|s| s.list()).await.map_err(store_error)?;
    Ok(Json(serde_json::json!({ "object": "list", "data": keys })).into_response())
}

/// `GET /admin/keys/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    ledger_written(&state).await;
    let key = state
        .keys
        .run(move |s| s.report(&id))
        .await
        .map_err(store_error)?;
    Ok(Json(key).into_response())
}

/// `PATCH /admin/keys/{id}`.
pub(crate) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    ledger_written(&state).await;
    let patch: KeyPatch = parse_json(&headers, body)?;
    let key = state
        .keys
        .run(move |s| {
            s.update(&id, &patch)?;
            s.report(&id)
        })
        .await
        .map_err(store_error)?;
    tracing::info!(key = %key.key.id, "API key updated (admin API)");
    Ok(Json(key).into_response())
}

/// `DELETE /admin/keys/{id}` and `POST /admin/keys/{id}/revoke`.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    ledger_written(&state).await;
    let key = state
        .keys
        .run(move |s| {
            s.revoke(&id)?;
            s.report(&id)
        })
        .await
        .map_err(store_error)?;
    tracing::info!(key = %key.key.id, "API key revoked (admin API)");
    Ok(Json(key).into_response())
}
