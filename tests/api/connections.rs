//! Slow and greedy connections: a slowloris trickle, idle sockets, a flood of connections,
//! clients that stop reading, oversized headers. Each must cost the service a bounded slot for a
//! bounded time, and never a 5xx.

use crate::support::{TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTH_CHECK: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: latchkey\r\n\r\n";

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.url.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

/// Whether the server has closed (or answered on) `stream` within `wait`.
async fn server_spoke(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buffer = [0_u8; 1024];
    tokio::time::timeout(wait, stream.read(&mut buffer))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_at_the_header_timeout() {
    let app = spawn_app_with(&["--header-timeout", "1s"]).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: latchkey\r\n")
        .await
        .unwrap();
    // A header line every 200 ms: every byte arrives in time, the whole request never does.
    let mut cut_off = None;
    for line in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let header = format!("X-Slow-{line}: 1\r\n");
        let sent = stream.write_all(header.as_bytes()).await;
        if sent.is_err() || server_spoke(&mut stream, Duration::from_millis(5)).await {
            cut_off = Some(started.elapsed());
            break;
        }
    }
    let cut_off = cut_off.expect("the trickling client was never cut off");
    assert!(
        cut_off >= Duration::from_millis(900) && cut_off < Duration::from_secs(3),
        "cut off after {cut_off:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_at_the_header_timeout() {
    let app = spawn_app_with(&["--header-timeout", "1s"]).await;
    let mut silent = connect(&app).await;
    assert!(server_spoke(&mut silent, Duration::from_secs(3)).await);

    // Also once a request has been served: keep-alive does not keep a socket for ever.
    let mut kept_alive = connect(&app).await;
    kept_alive.write_all(HEALTH_CHECK).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), kept_alive.read_to_end(&mut answer));
    assert!(
        closed.await.is_ok(),
        "the kept-alive connection was never closed"
    );
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(&["--max-connections", "2"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&app).await;
        stream.write_all(HEALTH_CHECK).await.unwrap();
        assert!(server_spoke(&mut stream, Duration::from_secs(2)).await);
        held.push(stream);
    }

    let mut third = connect(&app).await;
    third.write_all(HEALTH_CHECK).await.unwrap();
    assert!(
        !server_spoke(&mut third, Duration::from_millis(500)).await,
        "a connection beyond the cap was served"
    );

    drop(held.pop());
    let mut answer = [0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut answer))
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection_and_its_slot() {
    let app = spawn_app_with(&["--header-timeout", "1s", "--max-connections", "1"]).await;
    let (mut unread, mut requests) = connect(&app).await.into_split();
    // Far more answers than the socket buffers hold, none of them read.
    let asked = b"GET /openapi.json HTTP/1.1\r\nHost: latchkey\r\n\r\n".repeat(2000);
    tokio::spawn(async move {
        let _ = requests.write_all(&asked).await;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let mut next = connect(&app).await;
    next.write_all(HEALTH_CHECK).await.unwrap();
    let mut answer = [0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), next.read(&mut answer))
        .await
        .expect("the stalled connection gave its slot up")
        .unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "it waited for the slot"
    );
    let mut rest = Vec::new();
    let _ = unread.read_to_end(&mut rest).await;
}

#[tokio::test]
async fn oversized_and_countless_headers_are_refused_without_a_server_error() {
    let app = spawn_app().await;
    let huge = app
        .client
        .get(format!("{}/healthz", app.url))
        .header("cookie", "a".repeat(512 * 1024))
        .send()
        .await;
    assert_eq!(
        huge.expect("an answer").status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let mut many = app.client.get(format!("{}/healthz", app.url));
    for n in 0..500 {
        many = many.header(format!("x-header-{n}"), "1");
    }
    assert_eq!(
        many.send().await.expect("an answer").status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(
        app.get("/healthz", None).await.status(),
        StatusCode::OK,
        "still serving"
    );
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_at_the_body_timeout_and_gives_its_slot_up() {
    let app = spawn_app_with(&["--body-timeout", "1s", "--max-connections", "1"]).await;
    let (mut answers, mut requests) = connect(&app).await.into_split();
    let started = Instant::now();
    requests
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: latchkey\r\nContent-Type: application/json\r\n\
              Content-Length: 64\r\n\r\n",
        )
        .await
        .unwrap();
    // One byte a second: every byte arrives well inside the header timeout, the body never does.
    tokio::spawn(async move {
        for byte in b"{\"email\": \"ada@example.com\", \"password\": \"slow and steady\"}   " {
            if requests.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), answers.read_to_end(&mut answer))
        .await
        .expect("the trickling client was never cut off");
    let elapsed = started.elapsed();

    assert!(closed.is_ok() || !answer.is_empty(), "{closed:?}");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    let mut next = connect(&app).await;
    next.write_all(HEALTH_CHECK).await.unwrap();
    let mut answer = [0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(2), next.read(&mut answer))
        .await
        .expect("the slot was given up")
        .unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
}
