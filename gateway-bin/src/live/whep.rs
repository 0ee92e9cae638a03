//! WHEP (draft-ietf-wish-whep) endpoints and the live-stream listing:
//!
//! - `POST /api/v1/whep/{device_id}/{channel_id}[?transport=udp|tcp-passive|tcp-active]` with
//!   an SDP offer → `201 Created`, the SDP answer, `Location` of the session resource;
//! - `DELETE /api/v1/whep/sessions/{id}` ends it; `GET` on it tells whether it still plays;
//! - `GET /api/v1/streams` lists live media sessions.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gb28181::sdp::MediaTransport;
use media::webrtc::{EgressError, ViewerId, ViewerLocation};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tracing::info;

use super::hub::{JoinRequest, LiveError};
use crate::api::{ApiError, AppState};

/// Routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whep/{device_id}/{channel_id}", post(whep_post))
        .route(
            "/whep/sessions/{id}",
            delete(whep_delete).get(whep_get).patch(whep_patch),
        )
        .route("/streams", get(streams))
}

/// `?transport=`
#[derive(Debug, Deserialize)]
pub struct WhepQuery {
    transport: Option<String>,
}

impl From<LiveError> for ApiError {
    fn from(e: LiveError) -> Self {
        if let LiveError::Egress(e) = e {
            return egress_error(&e);
        }
        let status = match &e {
            LiveError::UnknownDevice(_) => StatusCode::NOT_FOUND,
            LiveError::Offline(_) => StatusCode::CONFLICT,
            LiveError::NoPort | LiveError::Socket(_) | LiveError::Stopped => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            LiveError::InviteTimeout(_) | LiveError::NoMedia { .. } => StatusCode::GATEWAY_TIMEOUT,
            LiveError::Refused(_)
            | LiveError::BadAnswer(_)
            | LiveError::Ended(_)
            | LiveError::Egress(_) => StatusCode::BAD_GATEWAY,
        };
        let error = match &e {
            LiveError::UnknownDevice(_) => "device not found",
            LiveError::Offline(_) => "device is offline",
            LiveError::NoPort => "no free media port",
            LiveError::Socket(_) => "cannot open a media socket",
            LiveError::InviteTimeout(_) => "the device did not answer the INVITE",
            LiveError::Refused(_) => "the device refused the stream",
            LiveError::BadAnswer(_) => "the device's SDP answer is unusable",
            LiveError::NoMedia { .. } => "no media from the device",
            LiveError::Ended(_) => "the stream ended",
            LiveError::Egress(_) => "the offer cannot be answered",
            LiveError::Stopped => "the stream manager stopped",
        };
        ApiError::new(status, error, json!({ "reason": e.to_string() }))
    }
}

fn egress_error(e: &EgressError) -> ApiError {
    match e {
        EgressError::NoCommonCodec {
            kind: "video",
            stream,
            offered,
        } => ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "the browser cannot receive {}: the camera sends {} and transcoding is not available",
                stream.name().to_uppercase(),
                stream.name().to_uppercase()
            ),
            json!({ "stream_codec": stream.name(), "offered_video_codecs": offered }),
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "the offer cannot be answered",
            json!({ "reason": other.to_string() }),
        ),
    }
}

async fn whep_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((device_id, channel_id)): Path<(String, String)>,
    Query(q): Query<WhepQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.to_ascii_lowercase().starts_with("application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "WHEP offers must be application/sdp",
            json!({ "content_type": ctype }),
        ));
    }
    let offer = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the offer is not UTF-8", Value::Null))?
        .to_owned();
    let transport = match q.transport.as_deref() {
        None => state.live.default_transport,
        Some(t) => MediaTransport::parse(t).ok_or_else(|| {
            ApiError::bad_request(
                "unknown transport",
                json!({ "transport": t, "expected": ["udp", "tcp-passive", "tcp-active"] }),
            )
        })?,
    };
    let dev = state.registry.get(&device_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "device not found",
            json!({ "device_id": device_id }),
        )
    })?;
    if !dev.online {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "device is offline",
            json!({ "device_id": device_id }),
        ));
    }
    // The device's own address: media is taken from it only.
    let device_ip = dev
        .remote_addr
        .as_deref()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    // The whole join — INVITE, first video, the egress answering — runs in the live core;
    // if this request is dropped meanwhile, the join is cancelled there.
    // A browser on this machine may also be offered the loopback candidate.
    let location = if peer.ip().is_loopback() {
        ViewerLocation::ThisHost
    } else {
        ViewerLocation::Elsewhere
    };
    let watching = state
        .live
        .hub
        .join(JoinRequest {
            device_id: device_id.clone(),
            channel_id: channel_id.clone(),
            transport,
            device_ip,
            offer,
            location,
        })
        .await?;
    let (viewer, answer) = (watching.viewer, watching.answer);
    info!(%device_id, %channel_id, %viewer, "WHEP session created");
    let location = format!("/api/v1/whep/sessions/{}", viewer.0);
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response())
}

fn parse_viewer(id: &str) -> Result<ViewerId, ApiError> {
    id.parse::<u64>().map(ViewerId).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such WHEP session",
            json!({ "id": id }),
        )
    })
}

async fn whep_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let viewer = parse_viewer(&id)?;
    match state.live.hub.viewer(viewer).await {
        Some(v) if v.state != "ended" => {
            state.live.hub.leave(viewer);
            Ok(StatusCode::OK)
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such WHEP session",
            json!({ "id": id }),
        )),
    }
}

async fn whep_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let viewer = parse_viewer(&id)?;
    let v = state.live.hub.viewer(viewer).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such WHEP session",
            json!({ "id": id }),
        )
    })?;
    Ok(Json(json!(v)))
}

/// Trickle ICE and ICE restarts are not used with an ICE-lite server that gives all its
/// candidates in the answer (WHEP §4.3).
async fn whep_patch() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported; all candidates are in the answer",
        Value::Null,
    )
}

async fn streams(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.live.hub.list().await))
}
