//! 控制台 — the station console (`console/`, Vue 3 + Element Plus + ECharts), built into
//! `console/dist` and shipped inside the binary: no CDN, no font server, works offline.
//!
//! `/console/` serves its `index.html` (never cached: it names the current assets); the
//! assets under `/console/assets/` carry a content hash in their names and are cached for a
//! year. `/` leads to the console.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::problem::Problem;

#[derive(rust_embed::Embed)]
#[folder = "../../console/dist"]
struct Assets;

fn file(path: &str) -> Option<Response> {
    let asset = Assets::get(path)?;
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, asset.metadata.mimetype().to_owned()),
                (header::CACHE_CONTROL, cache.to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            asset.data,
        )
            .into_response(),
    )
}

fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "没有这个页面").into_response()
}

pub(crate) async fn root() -> Redirect {
    Redirect::permanent("/console/")
}

pub(crate) async fn index() -> Response {
    file("index.html").unwrap_or_else(not_found)
}

pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    file(&path).unwrap_or_else(not_found)
}
