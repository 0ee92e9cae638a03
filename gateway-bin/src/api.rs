//! The REST API (JSON over HTTP, axum). Every `/api/v1` route needs
//! `Authorization: Bearer TOKEN`; `/healthz` and `/metrics` are open. Errors are
//! `{"error": "...", "detail": ...}` with a fitting status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gb28181::manscdp::Charset;
use gb28181::platform::DeviceSettings;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::warn;

use crate::registry::{ChannelView, Registry, rfc3339};
use crate::signalling::{QueryFailure, QueryKind, QueryOutcome, Signalling};
use crate::store::{ItemRow, StoreHandle, from_millis};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub signalling: Signalling,
    pub store: StoreHandle,
    pub token: Arc<str>,
    pub metrics: Option<PrometheusHandle>,
    pub query_wait: Duration,
    pub live: crate::live::LiveState,
}

/// An API error: status plus `{"error", "detail"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    detail: Value,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>, detail: Value) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            detail,
        }
    }

    fn not_found(device_id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "device not found",
            json!({ "device_id": device_id }),
        )
    }

    pub(crate) fn bad_request(error: impl Into<String>, detail: Value) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.error, "detail": self.detail }));
        (self.status, body).into_response()
    }
}

impl From<QueryFailure> for ApiError {
    fn from(f: QueryFailure) -> Self {
        match f {
            QueryFailure::UnknownDevice(d) => ApiError::not_found(&d),
            QueryFailure::Offline(d) => ApiError::new(
                StatusCode::CONFLICT,
                "device is offline",
                json!({ "device_id": d }),
            ),
            QueryFailure::Device(e) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "device did not answer",
                json!({ "reason": e.to_string() }),
            ),
            QueryFailure::Timeout(d) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "device did not answer in time",
                json!({ "waited_ms": d.as_millis() as u64 }),
            ),
            QueryFailure::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "signalling service stopped",
                Value::Null,
            ),
        }
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/devices", get(list_devices))
        .route(
            "/devices/{device_id}",
            get(get_device).put(put_device).delete(delete_device),
        )
        .route("/devices/{device_id}/channels", get(channels))
        .route(
            "/devices/{device_id}/catalog",
            get(catalog_tree).post(query_catalog),
        )
        .route("/devices/{device_id}/info", get(device_info))
        .route("/devices/{device_id}/status", get(device_status))
        .route("/devices/{device_id}/events", get(device_events))
        .merge(crate::live::whep::routes())
        .fallback(api_not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PUT,
            axum::http::Method::DELETE,
            axum::http::Method::PATCH,
            axum::http::Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::LOCATION]);
    Router::new()
        .route("/", get(crate::web::index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .route("/api/v1", post(api_not_found).get(api_not_found))
        .layer(cors)
        .with_state(state)
}

async fn require_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("Bearer").then(|| token.trim())
        });
    let ok = presented.is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes()));
    if ok {
        return next.run(req).await;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        if presented.is_some() {
            "invalid API token"
        } else {
            "missing bearer token"
        },
        json!({ "hint": "send Authorization: Bearer <api token>" }),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint", Value::Null)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (registered, online) = state.registry.counts();
    metrics::gauge!("devices_known").set(state.registry.len() as f64);
    metrics::gauge!("devices_registered").set(registered as f64);
    metrics::gauge!("devices_online").set(online as f64);
    match &state.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
            Value::Null,
        )
        .into_response(),
    }
}

fn check_id(device_id: &str) -> Result<(), ApiError> {
    if gb28181::id::GbId::parse(device_id).is_some_and(|id| id.as_str().len() == 20) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid device ID",
            json!({ "device_id": device_id, "expected": "20 decimal digits (GB/T 28181 Annex E)" }),
        ))
    }
}

async fn list_devices(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.registry.list()))
}

async fn get_device(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = state
        .registry
        .get(&device_id)
        .ok_or_else(|| ApiError::not_found(&device_id))?;
    Ok(Json(json!(rec.view())))
}

/// `PUT /devices/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUpdate {
    /// Per-device password; `""` clears it (global password again).
    password: Option<String>,
    /// `GB2312`, `GBK`, `GB18030` or `UTF-8`; `""` clears it.
    charset: Option<String>,
    /// Display name; `""` clears it.
    name: Option<String>,
}

async fn put_device(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
    body: Result<Json<DeviceUpdate>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_id(&device_id)?;
    let Json(update) = body.map_err(|e| {
        ApiError::bad_request("invalid JSON body", json!({ "reason": e.body_text() }))
    })?;
    let charset = match update.charset.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<Charset>().map_err(|_| {
            ApiError::bad_request(
                "unknown charset",
                json!({ "charset": c, "expected": ["GB2312", "GBK", "GB18030", "UTF-8"] }),
            )
        })?),
    };
    if let Some(p) = &update.password
        && p.len() > 128
    {
        return Err(ApiError::bad_request(
            "password too long",
            json!({ "max_len": 128 }),
        ));
    }
    let created = state.registry.get(&device_id).is_none();
    let mut settings = DeviceSettings::default();
    state.registry.update(&device_id, |r| {
        if let Some(p) = &update.password {
            r.password = (!p.is_empty()).then(|| p.clone());
        }
        if let Some(c) = &update.charset {
            r.charset = charset
                .map(|c| c.as_str().to_owned())
                .filter(|_| !c.is_empty());
        }
        if let Some(n) = &update.name {
            r.custom_name = (!n.is_empty()).then(|| n.clone());
        }
        settings.password = r.password.clone();
        settings.charset = r.charset.as_deref().and_then(|c| c.parse().ok());
    });
    let (id, u) = (device_id.clone(), update);
    state
        .store
        .call(move |s| {
            s.save_settings(
                &id,
                u.password.as_deref(),
                u.charset
                    .as_deref()
                    .map(|c| charset.map_or(c, |cs| if c.is_empty() { "" } else { cs.as_str() })),
                u.name.as_deref(),
            )
        })
        .await
        .map_err(storage_error)?;
    state
        .signalling
        .provision(device_id.clone(), settings)
        .await;
    let view = state.registry.get(&device_id).map(|r| r.view());
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(view))).into_response())
}

async fn delete_device(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.registry.remove(&device_id) {
        return Err(ApiError::not_found(&device_id));
    }
    state.signalling.remove(device_id.clone()).await;
    state
        .store
        .call(move |s| s.delete_device(&device_id))
        .await
        .map_err(storage_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn channels(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<Json<Vec<ChannelView>>, ApiError> {
    let rec = state
        .registry
        .get(&device_id)
        .ok_or_else(|| ApiError::not_found(&device_id))?;
    Ok(Json(rec.channels().map(ChannelView::from).collect()))
}

/// A node of the catalog tree.
#[derive(Debug, Serialize)]
struct TreeNode {
    id: String,
    name: Option<String>,
    kind: String,
    status: Option<String>,
    children: Vec<TreeNode>,
}

/// The catalog as a tree: each item under its parent(s) (several `/`-separated parents put
/// an item under each); items whose parents are not in the catalog are roots.
fn build_tree(device_id: &str, items: &[ItemRow]) -> Vec<TreeNode> {
    let ids: HashSet<&str> = items.iter().map(|i| i.item_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&ItemRow>> = HashMap::new();
    let mut roots = Vec::new();
    for it in items {
        let parents: Vec<&str> = it
            .parent_id
            .as_deref()
            .unwrap_or("")
            .split('/')
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != it.item_id && ids.contains(p))
            .collect();
        if parents.is_empty() {
            roots.push(it);
        }
        for p in parents {
            children.entry(p).or_default().push(it);
        }
    }
    fn node<'a>(
        it: &'a ItemRow,
        children: &HashMap<&'a str, Vec<&'a ItemRow>>,
        path: &mut Vec<&'a str>,
    ) -> TreeNode {
        path.push(&it.item_id);
        let mut kids = Vec::new();
        for c in children.get(it.item_id.as_str()).into_iter().flatten() {
            // A cycle in ParentIDs or an absurd depth ends the branch.
            if !path.contains(&c.item_id.as_str()) && path.len() < 16 {
                kids.push(node(c, children, path));
            }
        }
        path.pop();
        TreeNode {
            id: it.item_id.clone(),
            name: it.name.clone(),
            kind: it.kind.clone(),
            status: it.status.clone(),
            children: kids,
        }
    }
    let _ = device_id;
    let mut path = Vec::new();
    roots
        .into_iter()
        .map(|r| node(r, &children, &mut path))
        .collect()
}

async fn catalog_tree(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = state
        .registry
        .get(&device_id)
        .ok_or_else(|| ApiError::not_found(&device_id))?;
    Ok(Json(json!({
        "device_id": device_id,
        "complete": rec.catalog_complete,
        "updated_at": rec.catalog_updated_at.map(rfc3339),
        "item_count": rec.items.len(),
        "tree": build_tree(&device_id, &rec.items),
    })))
}

async fn query_catalog(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let outcome = state
        .signalling
        .query(&device_id, QueryKind::Catalog, state.query_wait)
        .await?;
    let QueryOutcome::Catalog(result) = outcome else {
        return Err(unexpected());
    };
    let items: Vec<ChannelView> = result
        .items
        .iter()
        .map(|i| ChannelView::from(&crate::registry::item_row(i)))
        .collect();
    Ok(Json(json!({
        "device_id": device_id,
        "sum_num": result.sum_num,
        "complete": result.complete,
        "pages": result.pages,
        "items": items,
    })))
}

fn storage_error(e: crate::store::StoreError) -> ApiError {
    warn!(error = %e, "store operation failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage error",
        json!({ "reason": e.to_string() }),
    )
}

fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected answer type",
        Value::Null,
    )
}

async fn device_info(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let outcome = state
        .signalling
        .query(&device_id, QueryKind::Info, state.query_wait)
        .await?;
    let QueryOutcome::Info(i) = outcome else {
        return Err(unexpected());
    };
    Ok(Json(json!({
        "device_id": device_id,
        "device_name": i.device_name,
        "result": i.result,
        "manufacturer": i.manufacturer,
        "model": i.model,
        "firmware": i.firmware,
        "channel": i.channel,
    })))
}

async fn device_status(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let outcome = state
        .signalling
        .query(&device_id, QueryKind::Status, state.query_wait)
        .await?;
    let QueryOutcome::Status(s) = outcome else {
        return Err(unexpected());
    };
    let alarms: Vec<Value> = s
        .alarm_status
        .iter()
        .map(|a| json!({ "device_id": a.device_id, "duty_status": a.duty_status }))
        .collect();
    Ok(Json(json!({
        "device_id": device_id,
        "result": s.result,
        "online": s.online,
        "status": s.status,
        "reason": s.reason,
        "encode": s.encode,
        "record": s.record,
        "device_time": s.device_time,
        "alarm_status": alarms,
    })))
}

/// `?limit=N` for the history.
#[derive(Debug, Deserialize)]
struct EventsQuery {
    limit: Option<u32>,
}

async fn device_events(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    if state.registry.get(&device_id).is_none() {
        return Err(ApiError::not_found(&device_id));
    }
    let limit = q.limit.unwrap_or(100).min(10_000);
    let rows = state
        .store
        .call(move |s| s.events(&device_id, limit))
        .await
        .map_err(storage_error)?;
    Ok(Json(json!(
        rows.into_iter()
            .map(|r| json!({ "at": rfc3339(from_millis(r.at)), "event": r.event, "reason": r.reason }))
            .collect::<Vec<_>>()
    )))
}
