//! A request's deadlines: its body must arrive within the body timeout of its headers, and its
//! answer must be ready within the request timeout.

use super::error::ApiError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How long a request may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    /// From its headers to its answer.
    pub(super) request: Duration,
    /// From its headers to the last byte of its body.
    pub(super) body: Duration,
}

/// Runs `request` under `deadlines`: past the request deadline it is answered 503 (dropping it
/// rolls back any transaction); a body still arriving at the body deadline is answered 408 and
/// its connection closed, so a trickling client holds a slot for seconds, not the whole deadline.
pub(super) async fn within(deadlines: Deadlines, request: Request, next: Next) -> Response {
    let late = Arc::new(AtomicBool::new(false));
    let request = if request.body().is_end_stream() {
        request
    } else {
        let deadline = Instant::now() + deadlines.body;
        let late = Arc::clone(&late);
        request.map(|inner| Body::new(TimedBody::new(inner, deadline, late)))
    };
    let limit = deadlines.request;
    let response = match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(
            crate::service::Outage::Deadline,
            anyhow::anyhow!("the request took longer than {limit:?}"),
        )
        .into_response(),
    };
    // The handler saw a failed read, and may have answered it as a malformed body; the client
    // needs to know it was too slow.
    if late.load(Ordering::Relaxed) {
        return ApiError::RequestTimeout.into_response();
    }
    response
}

/// A request body that fails once its deadline passes with bytes still to come.
struct TimedBody {
    inner: Body,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    late: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(inner: Body, deadline: Instant, late: Arc<AtomicBool>) -> TimedBody {
        TimedBody {
            inner,
            deadline,
            timer: None,
            late,
        }
    }
}

/// The body did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        // The timer is made only when the client keeps the server waiting.
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.late.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
