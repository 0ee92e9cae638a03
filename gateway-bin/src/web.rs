//! The browser player, shipped inside the binary.

use axum::http::header;
use axum::response::IntoResponse;

/// `GET /`: the device list and WHEP player (plain HTML and JavaScript).
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../web/index.html"),
    )
}
