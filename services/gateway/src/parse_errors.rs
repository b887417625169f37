//! Problem details for requests that never reach the router.
//!
//! hyper answers a request it cannot parse — a path over its 64 KiB URI limit (414), a header
//! section over its buffer (431), a malformed request line (400) — itself, with an empty body,
//! and offers no hook to change that answer. So every error the API gives is problem+json,
//! the connection's writer recognises that one kind of answer (a 4xx status line with
//! `content-length: 0`, which the router never sends: its errors always have a body) and
//! writes problem details in its place. Nothing else written is touched.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::problem::Problem;

/// A connection whose parse-error answers are rewritten as problem details.
pub struct ProblemOnParseError<IO> {
    io: IO,
    /// A rewritten answer still being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<IO> ProblemOnParseError<IO> {
    pub fn new(io: IO) -> ProblemOnParseError<IO> {
        ProblemOnParseError { io, pending: None }
    }
}

impl<IO: AsyncWrite + Unpin> ProblemOnParseError<IO> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ProblemOnParseError<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ProblemOnParseError<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(rewritten) = rewrite(buf) {
            self.pending = Some((rewritten, 0));
            // The original bytes are consumed; the replacement goes out now or on flush.
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// hyper's own answer to an unparseable request, as problem details; `None` for anything else.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let head = buf.get(..buf.len().min(1024))?;
    let head = std::str::from_utf8(head).ok()?;
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()?;
    if !(400..500).contains(&status)
        || !head
            .to_ascii_lowercase()
            .contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let status = StatusCode::from_u16(status).ok()?;
    let (kind, detail, field) = match status {
        StatusCode::URI_TOO_LONG => (
            "uri-too-long",
            format!("请求路径过长：最多 {} 字节", crate::input::MAX_PATH_BYTES),
            Some("path"),
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("header-too-large", "请求头过大".to_owned(), Some("headers"))
        }
        _ => ("invalid-request", "无法解析的 HTTP 请求".to_owned(), None),
    };
    let mut problem = Problem::new(status, kind, detail);
    problem.field = field.map(str::to_owned);
    let body = serde_json::to_string(&problem).ok()?;
    Some(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_client_errors_are_rewritten() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let rewritten = String::from_utf8(rewrite(hyper_414).unwrap()).unwrap();
        assert!(rewritten.starts_with("HTTP/1.1 414 "));
        assert!(rewritten.contains("application/problem+json"));
        assert!(rewritten.contains("\"field\":\"path\""));
        for untouched in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 99\r\n\r\n",
            b"{\"orders\":[]}",
            b"",
        ] {
            assert!(rewrite(untouched).is_none());
        }
    }
}
