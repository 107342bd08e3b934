//! The admin API behind the master key: usage totals and the request log, the same data
//! `opengateway usage` prints (API keys: [`crate::admin_keys`]). Every request needs `Authorization: Bearer <master key>`; a
//! server with no master key refuses them all (fail closed).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use http::{HeaderMap, header};
use opengateway::ErrorKind;
use opengateway::accounting::{GroupBy, RecordStatus, UsageFilter, UsageQuery};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::routes::AppState;

/// The environment variable that holds the master key when the config does not.
pub const MASTER_KEY_ENV: &str = "OPENGATEWAY_MASTER_KEY";

/// Most records one `/admin/requests` page returns.
const MAX_PAGE: usize = 1000;

/// What selects and groups ledger records, from a query string or the CLI's flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Dimensions, comma-separated: model, provider, key, user, tag, status, hour, day, month.
    pub by: Option<String>,
    /// Started at or after: `2026-11-01`, an RFC 3339 time, or `90m` / `24h` / `7d` ago.
    pub since: Option<String>,
    /// Started before (same forms).
    pub until: Option<String>,
    /// Only this API key.
    pub key: Option<String>,
    /// Only this end user.
    pub user: Option<String>,
    /// Only this model (`provider/model` or an alias).
    pub model: Option<String>,
    /// Only this provider id.
    pub provider: Option<String>,
    /// Only requests with this tag.
    pub tag: Option<String>,
    /// Only requests that ended this way.
    pub status: Option<String>,
    /// Most records to list (`/admin/requests`).
    pub limit: Option<usize>,
}

impl UsageParams {
    /// The ledger query these parameters ask; the error names the parameter at fault.
    pub fn query(&self) -> Result<UsageQuery, (String, String)> {
        let mut group_by = Vec::new();
        for name in self.by.iter().flat_map(|b| b.split(',')) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let by = GroupBy::parse(name).ok_or_else(|| {
                let names: Vec<&str> = GroupBy::ALL.iter().map(|g| g.as_str()).collect();
                (
                    "by".to_owned(),
                    format!("`{name}` is not one of {}", names.join(", ")),
                )
            })?;
            if !group_by.contains(&by) {
                group_by.push(by);
            }
        }
        let now = DateTime::<Utc>::from(std::time::SystemTime::now());
        let time = |text: &Option<String>, name: &str| {
            text.as_deref()
                .map(|t| parse_time(t, now).map_err(|m| (name.to_owned(), m)))
                .transpose()
        };
        let status = match self.status.as_deref() {
            None => None,
            Some(s) => Some(RecordStatus::parse(s).ok_or_else(|| {
                (
                    "status".to_owned(),
                    format!("`{s}` is not one of pending, ok, error, cancelled, interrupted"),
                )
            })?),
        };
        Ok(UsageQuery {
            group_by,
            filter: UsageFilter {
                since_ms: time(&self.since, "since")?,
                until_ms: time(&self.until, "until")?,
                key: self.key.clone(),
                user: self.user.clone(),
                model: self.model.clone(),
                provider: self.provider.clone(),
                tag: self.tag.clone(),
                status,
            },
        })
    }
}

/// `2026-11-01` (midnight UTC), an RFC 3339 time, or `90m` / `24h` / `7d` before `now`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    let split = text.len().saturating_sub(1);
    let ago = text
        .get(..split)
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|n| match text.get(split..) {
            Some("m") => TimeDelta::try_minutes(n),
            Some("h") => TimeDelta::try_hours(n),
            Some("d") => TimeDelta::try_days(n),
            _ => None,
        });
    match ago {
        Some(ago) => Ok((now - ago).timestamp_millis()),
        None => Err(format!(
            "`{text}` is not a date (2026-11-01), an RFC 3339 time, or 90m / 24h / 7d"
        )),
    }
}

/// Checks `Authorization: Bearer <master key>` in constant time.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let configured = state
        .gateway
        .config()
        .server
        .master_key
        .clone()
        .or_else(|| std::env::var(MASTER_KEY_ENV).ok())
        .filter(|k| !k.is_empty());
    let Some(master) = configured else {
        return Err(ApiError::new(
            ErrorKind::Authentication,
            format!("The admin API is off: set server.master_key (or {MASTER_KEY_ENV}) to use it."),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(master.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::Authentication,
            "The admin API needs `Authorization: Bearer <master key>`.",
        ))
    }
}

fn bad_param((param, message): (String, String)) -> ApiError {
    ApiError::invalid(Some(param.clone()), format!("Invalid `{param}`: {message}"))
}

/// `GET /admin/usage`: ledger totals, grouped and filtered by the query string.
pub(crate) async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Query(params) = params.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    let query = params.query().map_err(bad_param)?;
    let gateway = state.gateway.clone();
    let rows = tokio::task::spawn_blocking(move || gateway.usage(&query))
        .await
        .map_err(|e| ApiError::new(ErrorKind::InternalServer, e.to_string()))??;
    Ok(Json(serde_json::json!({ "object": "list", "data": rows })).into_response())
}

/// `GET /admin/requests`: the request log (ledger records), newest first.
pub(crate) async fn requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Query(params) = params.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    let filter = params.query().map_err(bad_param)?.filter;
    let limit = params.limit.unwrap_or(100).min(MAX_PAGE);
    let gateway = state.gateway.clone();
    let records = tokio::task::spawn_blocking(move || gateway.usage_records(&filter, limit))
        .await
        .map_err(|e| ApiError::new(ErrorKind::InternalServer, e.to_string()))??;
    Ok(Json(serde_json::json!({ "object": "list", "data": records })).into_response())
}

/// `GET /admin/requests/{id}`: one ledger record, with its request and response bodies when
/// the server keeps them (`server.log_bodies: true`; else `bodies` is null).
pub(crate) async fn request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let gateway = state.gateway.clone();
    let lookup = id.clone();
    let (record, bodies) = tokio::task::spawn_blocking(move || {
        let record = gateway.usage_record(&lookup)?;
        let bodies = match record {
            Some(_) => gateway.request_bodies(&lookup)?,
            None => None,
        };
        Ok::<_, opengateway::Error>((record, bodies))
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::InternalServer, e.to_string()))??;
    let Some(record) = record else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("No request `{id}` in the ledger."),
        ));
    };
    let mut value = serde_json::to_value(&record)
        .map_err(|e| ApiError::new(ErrorKind::InternalServer, e.to_string()))?;
    // Bodies are stored as the JSON text that was sent; shown parsed when they parse.
    let parsed = |text: Option<String>| {
        text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
    };
    value["bodies"] = match bodies {
        Some(b) => serde_json::json!({
            "request": parsed(b.request),
            "response": parsed(b.response),
        }),
        None => serde_json::Value::Null,
    };
    Ok(Json(value).into_response())
}
