//! Rate limits on the public API: per client address, per bearer token, and stricter ones for
//! signing in and placing orders. Exceeding one is answered `429` problem+json with
//! `Retry-After`.
//!
//! The limiting itself is the `governor` crate's (GCRA, keyed); this module only says what is
//! limited by what. Limits are configuration (`--rate-limits` / `DIANDAN_RATE_LIMITS`): `off`
//! disables them (load tests on loopback), never a code path.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::Digest;

use crate::problem::Problem;

/// One limit: `count` requests per minute, refilled evenly, all of them usable at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: NonZeroU32,
}

/// What is limited, and how much. `None`: that limit is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Every request from one client address (generous: many phones share a carrier's NAT).
    pub address: Option<Rate>,
    /// Every request carrying one bearer token.
    pub token: Option<Rate>,
    /// Sign-in attempts from one client address.
    pub login: Option<Rate>,
    /// Order placements by one token (or address, without a token).
    pub place: Option<Rate>,
}

impl RateLimits {
    /// The defaults: `address=1200/min,token=300/min,login=20/min,place=10/min`.
    pub const DEFAULT: &'static str = "address=1200/min,token=300/min,login=20/min,place=10/min";

    /// No limits at all.
    pub fn off() -> RateLimits {
        RateLimits {
            address: None,
            token: None,
            login: None,
            place: None,
        }
    }
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits::DEFAULT
            .parse()
            .expect("default rate limits parse")
    }
}

impl FromStr for RateLimits {
    type Err = String;

    /// `off`, or comma-separated `name=N/min` (or `N/s`) for `address`, `token`, `login`,
    /// `place`; a name left out keeps its default, `name=off` turns that one off.
    fn from_str(text: &str) -> Result<RateLimits, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(RateLimits::off());
        }
        let base = if text.is_empty() {
            RateLimits::off()
        } else {
            RateLimits::off().with(RateLimits::DEFAULT)?
        };
        base.with(text)
    }
}

impl RateLimits {
    /// These limits with the `name=N/min` settings of `text` applied over them.
    fn with(mut self, text: &str) -> Result<RateLimits, String> {
        let limits = &mut self;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected name=N/min"))?;
            let rate = if value == "off" {
                None
            } else {
                let (count, unit) = value
                    .split_once('/')
                    .ok_or_else(|| format!("`{part}`: expected N/min or N/s"))?;
                let count: u32 = count
                    .parse()
                    .map_err(|_| format!("`{part}`: {count} is not a count"))?;
                let per_minute = match unit {
                    "min" | "m" => count,
                    "s" | "sec" => count.saturating_mul(60),
                    _ => return Err(format!("`{part}`: unit must be /min or /s")),
                };
                Some(Rate {
                    per_minute: NonZeroU32::new(per_minute)
                        .ok_or_else(|| format!("`{part}`: use `off`, not 0"))?,
                })
            };
            match name {
                "address" => limits.address = rate,
                "token" => limits.token = rate,
                "login" => limits.login = rate,
                "place" => limits.place = rate,
                other => return Err(format!("unknown rate limit `{other}`")),
            }
        }
        Ok(self)
    }
}

type Limiter = DefaultKeyedRateLimiter<String>;

/// The limiters of one gateway.
#[derive(Clone)]
pub struct Limiters {
    inner: Arc<Inner>,
}

struct Inner {
    address: Option<Limiter>,
    token: Option<Limiter>,
    login: Option<Limiter>,
    place: Option<Limiter>,
    calls: AtomicU64,
}

fn limiter(rate: Option<Rate>) -> Option<Limiter> {
    rate.map(|r| RateLimiter::keyed(Quota::per_minute(r.per_minute)))
}

impl Limiters {
    pub fn new(limits: &RateLimits) -> Limiters {
        Limiters {
            inner: Arc::new(Inner {
                address: limiter(limits.address),
                token: limiter(limits.token),
                login: limiter(limits.login),
                place: limiter(limits.place),
                calls: AtomicU64::new(0),
            }),
        }
    }

    /// Checks a request against every limit that applies; the first one exceeded answers.
    fn check(&self, request: &axum::extract::Request) -> Result<(), Problem> {
        let inner = &self.inner;
        // Forget idle keys now and then, so the tables stay as small as the active clients.
        if inner.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for l in [&inner.address, &inner.token, &inner.login, &inner.place]
                .into_iter()
                .flatten()
            {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        let address = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        // The token itself is not kept: a digest is key enough.
        let token = request
            .headers()
            .get("authorization")
            .map(|v| format!("{:x}", sha2::Sha256::digest(v.as_bytes())));
        let path = request.uri().path();
        let is_login = path.starts_with("/api/v1/auth/") || path == "/api/v1/dev/login";
        let is_place = request.method() == Method::POST && path == "/api/v1/orders";
        let checks = [
            (&inner.address, Some(&address), "同一地址"),
            (&inner.token, token.as_ref(), "同一账号"),
            (
                &inner.login,
                Some(&address).filter(|_| is_login),
                "登录尝试",
            ),
            (
                &inner.place,
                Some(token.as_ref().unwrap_or(&address)).filter(|_| is_place),
                "下单",
            ),
        ];
        for (limiter, key, what) in checks {
            let (Some(limiter), Some(key)) = (limiter, key) else {
                continue;
            };
            if let Err(not_until) = limiter.check_key(key) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    format!("{what}的请求过于频繁，请 {seconds} 秒后再试"),
                );
                problem.retry_after = Some(u32::try_from(seconds.max(1)).unwrap_or(u32::MAX));
                return Err(problem);
            }
        }
        Ok(())
    }
}

/// The middleware: limits first, then the route.
pub async fn limit(
    axum::extract::State(limiters): axum::extract::State<Limiters>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match limiters.check(&request) {
        Ok(()) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_configuration() {
        let default = RateLimits::default();
        assert_eq!(default.login.unwrap().per_minute.get(), 20);
        assert_eq!("off".parse::<RateLimits>().unwrap(), RateLimits::off());
        let custom: RateLimits = "login=2/s,token=off".parse().unwrap();
        assert_eq!(custom.login.unwrap().per_minute.get(), 120);
        assert_eq!(custom.token, None);
        assert_eq!(custom.address, default.address);
        for bad in [
            "login",
            "login=5",
            "login=0/min",
            "nope=1/min",
            "login=x/min",
        ] {
            assert!(bad.parse::<RateLimits>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_strictest_limit_answers_429_with_retry_after() {
        let limiters = Limiters::new(&"address=off,token=off,login=2/min".parse().unwrap());
        let login = || {
            axum::http::Request::post("/api/v1/dev/login")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert!(limiters.check(&login()).is_ok());
        assert!(limiters.check(&login()).is_ok());
        let problem = limiters.check(&login()).unwrap_err();
        assert_eq!(problem.status, 429);
        assert!(problem.retry_after.unwrap() >= 1);
        // Other routes are not sign-ins.
        let other = axum::http::Request::get("/api/v1/org")
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(limiters.check(&other).is_ok());
    }
}
