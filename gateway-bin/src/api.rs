//! The REST API (JSON over HTTP, axum). Every `/api/v1` route needs
//! `Authorization: Bearer TOKEN`; `/healthz` and `/metrics` are open. Errors are
//! `{"error": "...", "detail": ...}` with a fitting status.
//!
//! Failed token attempts are throttled per client address (429 with `Retry-After` for a
//! growing back-off); CORS is answered only for the configured origins.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gb28181::manscdp::Charset;
use gb28181::platform::{Limit, MethodCounts};
use gb28181::throttle::{Throttle, ThrottleConfig};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::warn;

use crate::registry::{ChannelView, Registry, rfc3339, split_sources};
use crate::signalling::{QueryFailure, QueryKind, QueryOutcome, Signalling};
use crate::store::{ItemRow, SettingsUpdate, StoreError, StoreHandle, from_millis};

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
    /// Failed token attempts per client address.
    pub token_failures: Arc<Mutex<Throttle<IpAddr>>>,
    /// Origins allowed to call the API from a browser page.
    pub cors_origins: Vec<String>,
}

/// The throttle on failed token attempts: `max_failures` in `window` lock an address for a
/// minute, doubling up to an hour.
pub fn token_throttle(max_failures: u32, window: Duration) -> Arc<Mutex<Throttle<IpAddr>>> {
    Arc::new(Mutex::new(Throttle::new(ThrottleConfig {
        max_failures,
        window,
        initial_backoff: Duration::from_secs(60),
        max_backoff: Duration::from_secs(3600),
        capacity: 10_000,
    })))
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
            QueryFailure::Busy(limit) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many open queries; try again shortly",
                json!({ "limit": limit }),
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
            QueryFailure::Refused(e) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the query was refused",
                json!({ "reason": e.to_string() }),
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
        .route("/security", get(security))
        .merge(crate::live::whep::routes())
        .fallback(api_not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let router = Router::new()
        .route("/", get(crate::web::index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .route("/api/v1", post(api_not_found).get(api_not_found))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_secs(30),
        ));
    let origins: Vec<HeaderValue> = state
        .cors_origins
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect();
    let router = if origins.is_empty() {
        // Same-origin only: the player and console are served from here.
        router
    } else {
        router.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    axum::http::Method::GET,
                    axum::http::Method::POST,
                    axum::http::Method::PUT,
                    axum::http::Method::DELETE,
                    axum::http::Method::PATCH,
                    axum::http::Method::OPTIONS,
                ])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([header::LOCATION]),
        )
    };
    router.with_state(state)
}

async fn require_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let ip = crate::http::peer(&req).map(|p| p.ip());
    let now = Instant::now();
    if let Some(ip) = ip
        && let Ok(t) = state.token_failures.lock()
        && let Err(wait) = t.check(&ip, now)
    {
        return too_many_attempts(wait);
    }
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
    if presented.is_some()
        && let Some(ip) = ip
        && let Ok(mut t) = state.token_failures.lock()
    {
        metrics::counter!("api_auth_failures_total").increment(1);
        if let Some(wait) = t.fail(ip, now) {
            warn!(%ip, backoff = wait.as_secs(), "API token guessed wrong too often: address refused");
            return too_many_attempts(wait);
        }
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

fn too_many_attempts(wait: Duration) -> Response {
    metrics::counter!("api_auth_throttled_total").increment(1);
    let secs = wait.as_secs().max(1);
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed token attempts from this address",
        json!({ "retry_after_secs": secs }),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
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
    if let Some(snapshot) = state.signalling.security().await {
        export_core(&snapshot);
    }
    let shell = state.signalling.shell_stats();
    metrics::counter!("sip_tcp_refused_total").absolute(shell.refused.load(Ordering::Relaxed));
    metrics::counter!("sip_tcp_write_overflows_total")
        .absolute(shell.write_overflows.load(Ordering::Relaxed));
    let st = state.store.stats();
    for (name, v) in [
        ("store_op_errors_total", &st.op_errors),
        ("store_rollbacks_total", &st.rollbacks),
        ("store_busy_total", &st.busy),
        ("store_queue_waits_total", &st.waits),
        ("store_history_pruned_total", &st.history_pruned),
    ] {
        metrics::counter!(name).absolute(v.load(Ordering::Relaxed));
    }
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

/// The signalling core's counters as Prometheus series (every label set bounded).
fn export_core(snap: &crate::signalling::SecuritySnapshot) {
    let s = &snap.stats;
    let methods = |name: &'static str, counts: &MethodCounts| {
        for (method, n) in counts.iter().filter(|(_, n)| *n > 0) {
            metrics::counter!(name, "kind" => "request", "method" => method).absolute(n);
        }
    };
    methods("sip_messages_in_total", &s.requests_in);
    methods("sip_messages_out_total", &s.requests_out);
    for (name, map) in [
        ("sip_messages_in_total", &s.responses_in),
        ("sip_messages_out_total", &s.responses_out),
    ] {
        for (status, n) in map {
            metrics::counter!(name, "kind" => "response", "status" => status.to_string())
                .absolute(*n);
        }
    }
    metrics::counter!("sip_parse_errors_total", "transport" => "udp").absolute(s.parse_errors_udp);
    metrics::counter!("sip_parse_errors_total", "transport" => "tcp").absolute(s.parse_errors_tcp);
    metrics::counter!("sip_tcp_reads_total").absolute(s.tcp_reads);
    metrics::counter!("sip_tcp_split_messages_total").absolute(s.tcp_split_messages);
    metrics::counter!("sip_transaction_timeouts_total").absolute(s.transaction_timeouts);
    metrics::counter!("sip_register_failures_total").absolute(s.register_failures);
    metrics::counter!("sip_register_throttled_total").absolute(s.register_throttled);
    metrics::counter!("sip_auth_lockouts_total").absolute(s.auth_lockouts);
    metrics::counter!("sip_source_refused_total").absolute(s.source_refused);
    metrics::counter!("catalog_items_total").absolute(s.catalog_items);
    for limit in Limit::ALL {
        metrics::counter!("sip_limit_hits_total", "limit" => limit.as_str())
            .absolute(s.hits(limit));
    }
    let (clients, servers, conns) = snap.load;
    metrics::gauge!("sip_transactions", "role" => "client").set(clients as f64);
    metrics::gauge!("sip_transactions", "role" => "server").set(servers as f64);
    metrics::gauge!("sip_tcp_connections").set(conns as f64);
}

/// `GET /api/v1/security`: who was refused and what is locked out now.
async fn security(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let snap = state.signalling.security().await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "signalling service stopped",
            Value::Null,
        )
    })?;
    let sources = |v: &[(IpAddr, u64)]| -> Vec<Value> {
        v.iter()
            .take(100)
            .map(|(ip, n)| json!({ "address": ip.to_string(), "count": n }))
            .collect()
    };
    let l = &snap.lockouts;
    let api_locked: Vec<Value> = state
        .token_failures
        .lock()
        .map(|t| {
            t.locked(Instant::now())
                .map(
                    |(ip, w)| json!({ "address": ip.to_string(), "retry_after_secs": w.as_secs() }),
                )
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "refused_sources": sources(&snap.refused_sources),
        "auth_failure_sources": sources(&snap.auth_failure_sources),
        "lockouts": {
            "device_from_address": l.pairs.iter().map(|(d, ip, w)| json!({ "device_id": d, "address": ip.to_string(), "retry_after_secs": w.as_secs() })).collect::<Vec<_>>(),
            "address": l.sources.iter().map(|(ip, w)| json!({ "address": ip.to_string(), "retry_after_secs": w.as_secs() })).collect::<Vec<_>>(),
            "device": l.devices.iter().map(|(d, w)| json!({ "device_id": d, "retry_after_secs": w.as_secs() })).collect::<Vec<_>>(),
            "api_token": api_locked,
        },
        "limit_hits": Limit::ALL.iter().map(|l| (l.as_str().to_owned(), json!(snap.stats.hits(*l)))).collect::<serde_json::Map<_, _>>(),
        "source_refused": snap.stats.source_refused,
        "register_failures": snap.stats.register_failures,
        "register_throttled": snap.stats.register_throttled,
    })))
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
    /// Addresses or CIDR ranges that may speak for the device besides the source of its
    /// registration (a lower platform behind a load balancer); `[]` clears them.
    trusted_sources: Option<Vec<String>>,
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
    let trusted = match &update.trusted_sources {
        None => None,
        Some(list) => {
            if list.len() > 64 {
                return Err(ApiError::bad_request(
                    "too many trusted sources",
                    json!({ "max": 64 }),
                ));
            }
            let mut nets = Vec::new();
            for n in list {
                let net: ipnet::IpNet = n
                    .parse()
                    .or_else(|_| n.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ApiError::bad_request(
                            "not an address or CIDR range",
                            json!({ "trusted_sources": n, "expected": "e.g. 10.0.0.0/24 or 10.0.0.7" }),
                        )
                    })?;
                nets.push(net.to_string());
            }
            Some(nets.join(","))
        }
    };
    let change = SettingsUpdate {
        password: update.password.clone(),
        charset: update
            .charset
            .as_deref()
            .map(|c| charset.map_or_else(|| c.to_owned(), |cs| cs.as_str().to_owned())),
        custom_name: update.name.clone(),
        trusted_sources: trusted.clone(),
    };
    let created = state.registry.get(&device_id).is_none();
    let id = device_id.clone();
    // Stored (committed) first: the answer tells the truth about what a restart keeps.
    state
        .store
        .call(move |s| s.save_settings(&id, &change))
        .await
        .map_err(storage_error)?;
    let mut settings = None;
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
        if let Some(t) = &trusted {
            r.trusted_sources = split_sources(Some(t));
        }
        settings = Some(r.settings());
    });
    state
        .signalling
        .provision(device_id.clone(), settings.unwrap_or_default())
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
    if state.registry.get(&device_id).is_none() {
        return Err(ApiError::not_found(&device_id));
    }
    let id = device_id.clone();
    state
        .store
        .call(move |s| s.delete_device(&id))
        .await
        .map_err(storage_error)?;
    state.registry.remove(&device_id);
    state.signalling.remove(device_id.clone()).await;
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
    /// Further parents the item names (it is placed under its first one only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also_under: Vec<String>,
    children: Vec<TreeNode>,
}

/// Nodes of one answer at most.
const TREE_MAX_NODES: usize = 50_000;
/// Nesting at most; deeper items are listed at the top level.
const TREE_MAX_DEPTH: usize = 16;

/// The catalog as a tree: each item placed once, under the first of its `/`-separated
/// ParentIDs that is in the catalog (the others listed in `also_under`). Items without such
/// a parent, items in a ParentID cycle and items nested deeper than 16 levels are roots.
/// Returns the roots and whether the node cap cut the tree.
fn build_tree(items: &[ItemRow]) -> (Vec<TreeNode>, bool) {
    let index: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.item_id.as_str(), i))
        .collect();
    let mut parent = vec![None; items.len()];
    let mut also = vec![Vec::new(); items.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for (i, it) in items.iter().enumerate() {
        let mut seen = HashSet::new();
        for p in it
            .parent_id
            .as_deref()
            .unwrap_or("")
            .split('/')
            .map(str::trim)
        {
            let Some(&pi) = index.get(p) else { continue };
            if pi == i || !seen.insert(pi) {
                continue;
            }
            if parent[i].is_none() {
                parent[i] = Some(pi);
                children[pi].push(i);
            } else {
                also[i].push(p.to_owned());
            }
        }
    }
    struct Builder<'a> {
        items: &'a [ItemRow],
        children: Vec<Vec<usize>>,
        also: Vec<Vec<String>>,
        placed: Vec<bool>,
        count: usize,
        deferred: Vec<usize>,
    }
    impl Builder<'_> {
        fn node(&mut self, i: usize, depth: usize) -> TreeNode {
            self.placed[i] = true;
            self.count += 1;
            let mut kids = Vec::new();
            for c in std::mem::take(&mut self.children[i]) {
                if self.placed[c] || self.count >= TREE_MAX_NODES {
                    continue;
                }
                if depth + 1 < TREE_MAX_DEPTH {
                    kids.push(self.node(c, depth + 1));
                } else {
                    self.deferred.push(c);
                }
            }
            let it = &self.items[i];
            TreeNode {
                id: it.item_id.clone(),
                name: it.name.clone(),
                kind: it.kind.clone(),
                status: it.status.clone(),
                also_under: std::mem::take(&mut self.also[i]),
                children: kids,
            }
        }
    }
    let mut b = Builder {
        items,
        children,
        also,
        placed: vec![false; items.len()],
        count: 0,
        deferred: Vec::new(),
    };
    let mut roots = Vec::new();
    let order = (0..items.len())
        .filter(|&i| parent[i].is_none())
        .chain(0..items.len());
    for i in order {
        while let Some(d) = b.deferred.pop() {
            if !b.placed[d] && b.count < TREE_MAX_NODES {
                roots.push(b.node(d, 0));
            }
        }
        if !b.placed[i] && b.count < TREE_MAX_NODES {
            roots.push(b.node(i, 0));
        }
    }
    while let Some(d) = b.deferred.pop() {
        if !b.placed[d] && b.count < TREE_MAX_NODES {
            roots.push(b.node(d, 0));
        }
    }
    (roots, b.count < items.len())
}

async fn catalog_tree(
    State(state): State<AppState>,
    Path(device_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = state
        .registry
        .get(&device_id)
        .ok_or_else(|| ApiError::not_found(&device_id))?;
    let (tree, truncated) = build_tree(&rec.items);
    Ok(Json(json!({
        "device_id": device_id,
        "complete": rec.catalog_complete,
        "updated_at": rec.catalog_updated_at.map(rfc3339),
        "item_count": rec.items.len(),
        "tree": tree,
        "truncated": truncated,
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

/// A store failure: 503 with the cause (a full disk, a busy queue, a rolled-back
/// transaction): nothing was changed, the client may retry.
fn storage_error(e: StoreError) -> ApiError {
    warn!(error = %e, "store operation failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage error: nothing was changed",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, parents: &str) -> ItemRow {
        ItemRow {
            item_id: id.into(),
            kind: "channel".into(),
            parent_id: (!parents.is_empty()).then(|| parents.into()),
            ..ItemRow::default()
        }
    }

    fn count(nodes: &[TreeNode]) -> usize {
        nodes.iter().map(|n| 1 + count(&n.children)).sum()
    }

    #[test]
    fn each_item_is_placed_once_whatever_its_parents() {
        // 36 items, each naming every earlier one as a parent: the old expansion put item k
        // under all k-1 parents (2^35 nodes); each is placed once now.
        let ids: Vec<String> = (0..36).map(|k| format!("3402000000132{k:07}")).collect();
        let items: Vec<ItemRow> = (0..36)
            .map(|k| item(&ids[k], &ids[..k].join("/")))
            .collect();
        let (tree, truncated) = build_tree(&items);
        assert_eq!(count(&tree), 36);
        assert!(!truncated);
        let json = serde_json::to_string(&tree).unwrap();
        assert!(json.len() < 20_000, "{} bytes", json.len());
        assert_eq!(tree[0].children[0].also_under.len(), 0);
    }

    #[test]
    fn cycles_and_depth_keep_every_item() {
        let mut items = vec![item("a", "b"), item("b", "a")];
        // A chain 40 deep.
        items.push(item("c0", ""));
        for k in 1..40 {
            items.push(item(&format!("c{k}"), &format!("c{}", k - 1)));
        }
        let (tree, truncated) = build_tree(&items);
        assert_eq!(count(&tree), items.len());
        assert!(!truncated);
        fn depth(n: &[TreeNode]) -> usize {
            n.iter().map(|c| 1 + depth(&c.children)).max().unwrap_or(0)
        }
        assert!(depth(&tree) <= TREE_MAX_DEPTH);
    }

    #[test]
    fn the_tree_is_capped() {
        let items: Vec<ItemRow> = (0..TREE_MAX_NODES + 10)
            .map(|k| item(&format!("i{k}"), ""))
            .collect();
        let (tree, truncated) = build_tree(&items);
        assert_eq!(tree.len(), TREE_MAX_NODES);
        assert!(truncated);
    }
}
