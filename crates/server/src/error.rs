//! The one place where errors become HTTP responses, in OpenAI's shape:
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds, for 429/503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 invalid_request_error naming the parameter.
    pub fn invalid(param: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.into()),
            code: Some(code),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// A required field is absent: OpenAI's message, the field named.
    pub fn missing(param: &str) -> Self {
        Self::invalid(
            param,
            "missing_required_parameter",
            format!("Missing required parameter: '{param}'."),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self {
            param: Some("model".into()),
            code: Some("model_not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("The model `{model}` does not exist or you do not have access to it."),
            )
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self {
            code: Some("request_too_large"),
            ..Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("The request body exceeds the limit of {limit} bytes."),
            )
        }
    }

    pub fn overloaded(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
    }

    /// 429: the queue is full.
    pub fn queue_full(waiting: usize) -> Self {
        Self {
            code: Some("queue_full"),
            retry_after: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                format!("The server is at capacity ({waiting} requests are waiting). Please retry after a short wait."),
            )
        }
    }

    /// 503: waited too long for a slot.
    pub fn queue_timeout() -> Self {
        Self {
            code: Some("queue_timeout"),
            ..Self::overloaded("The server is overloaded: the request waited too long for capacity. Please retry.")
        }
    }

    /// 500: a bug, never bad input.
    /// 429 `insufficient_quota`: the budget of `who` (`key`, `project`) is spent.
    pub fn insufficient_quota(who: &str, budget: f64, spent: f64) -> Self {
        Self {
            code: Some("insufficient_quota"),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                format!(
                    "You exceeded your current quota: this {who} has spent ${spent:.6} of its ${budget:.6} budget."
                ),
            )
        }
    }

    /// 429 `rate_limit_exceeded`, with Retry-After.
    pub fn rate_limited(d: &crate::limits::Denied) -> Self {
        let (message, retry) = match d.retry_after {
            Some(s) => (
                format!(
                    "Rate limit reached for {} per minute: limit {}, requested {}. Please try again in {}.",
                    d.which,
                    d.limit,
                    d.requested,
                    crate::limits::duration_text(s)
                ),
                s.ceil().max(1.0) as u64,
            ),
            None => (
                format!(
                    "Request too large: it needs {} {} but the limit is {} per minute.",
                    d.requested, d.which, d.limit
                ),
                60,
            ),
        };
        Self {
            code: Some("rate_limit_exceeded"),
            param: None,
            retry_after: Some(retry),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, d.which, message)
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn body(&self) -> tandem_api::ErrorBody {
        tandem_api::ErrorBody {
            error: tandem_api::ErrorDetail {
                message: self.message.clone(),
                kind: self.kind.into(),
                param: self.param.clone(),
                code: self.code.map(String::from),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = %self.status, message = %self.message, "request refused");
        }
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The refused body is left unread on the connection, so it cannot carry another
            // request: say so, and hyper closes it after this response (a keep-alive client
            // otherwise reuses it and gets no answer).
            r.headers_mut().insert("connection", HeaderValue::from_static("close"));
        }
        r
    }
}

impl From<tandem_engine::EngineError> for ApiError {
    fn from(e: tandem_engine::EngineError) -> Self {
        use tandem_engine::EngineError as E;
        match e {
            E::BadParam { param, problem } => ApiError::invalid(param, "invalid_value", format!("Invalid '{param}': {problem}.")),
            E::PromptTooLong { prompt, ctx } => ApiError::invalid(
                "messages",
                "context_length_exceeded",
                format!("This model's maximum context length is {ctx} tokens. However, your messages resulted in {prompt} tokens. Please reduce the length of the messages."),
            ),
            E::Stopped => ApiError::overloaded("The server is shutting down."),
            E::Overloaded { waiting } => ApiError::queue_full(waiting),
            other => ApiError::internal(other.to_string()),
        }
    }
}
