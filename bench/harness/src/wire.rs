//! Plain HTTP/1.1 over keep-alive TCP connections, for the generator and the sink.
//!
//! The generator and the sink share the machine with the server they measure, so every
//! microsecond they spend is taken from it. With a general client (reqwest: a URL parsed, a
//! header map built and a connection task woken for every request) and server (axum) they used
//! 84-88 µs of CPU per end-to-end delivery; this takes about 30 µs of that away (ANALYSIS,
//! round 10). Here a request is one prepared write and one read on a connection its task
//! owns: no connection task, and no per-request parsing beyond the answer's head. Bodies are
//! framed by Content-Length or chunked, as HTTP/1.1 allows.

use bytes::{Buf, Bytes, BytesMut};
use std::io::Write as _;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A head larger than this is refused: nothing this harness talks to sends one.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// One message read off a connection.
#[derive(Debug)]
pub struct Message {
    /// The status code of an answer; 0 for a request.
    pub status: u16,
    pub body: Bytes,
    /// The peer asked to close the connection after this message.
    pub close: bool,
}

/// Where requests go: `http://host:port/path?query`, split once.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub authority: String,
    pub path_and_query: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Target {
            authority: authority.to_string(),
            path_and_query: path,
        })
    }
}

/// The request line and headers every request of a run shares; only Content-Length varies.
pub fn request_head(method: &str, target: &Target, headers: &[(&str, &str)]) -> String {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nhost: {}\r\n",
        target.path_and_query, target.authority
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head
}

/// A keep-alive connection with its read buffer.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// Bytes read so far, to tell a connection that failed before answering at all.
    bytes_in: u64,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
            bytes_in: 0,
        }
    }

    pub async fn connect(authority: &str) -> Result<Conn, String> {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        Ok(Conn::new(stream))
    }

    /// Writes `head` (ending in the last header's CRLF), a Content-Length for `body` unless
    /// `body` is None, the blank line and the body, in one write.
    pub async fn send(&mut self, head: &str, body: Option<&[u8]>) -> Result<(), String> {
        let mut out = Vec::with_capacity(head.len() + 32 + body.map_or(0, |b| b.len()));
        out.extend_from_slice(head.as_bytes());
        if let Some(body) = body {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "content-length: {}\r\n\r\n", body.len());
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Writes bytes as they are (a prepared answer).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads one answer (`response`) or request. `Ok(None)`: the peer closed the connection
    /// before a message began.
    pub async fn read(&mut self, response: bool) -> Result<Option<Message>, String> {
        let (head_len, status, framing, close) = loop {
            if let Some(parsed) = parse_head(&self.buf, response)? {
                break parsed;
            }
            if self.buf.len() > MAX_HEAD {
                return Err("message head over 64 KiB".into());
            }
            if self.fill().await? == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err("connection closed inside a message head".into()),
                };
            }
        };
        self.buf.advance(head_len);
        let body = match framing {
            Framing::Length(n) => {
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        return Err("connection closed inside a body".into());
                    }
                }
                self.buf.split_to(n).freeze()
            }
            Framing::Chunked => self.read_chunked().await?,
        };
        Ok(Some(Message {
            status,
            body,
            close,
        }))
    }

    async fn read_chunked(&mut self) -> Result<Bytes, String> {
        let mut body = BytesMut::new();
        loop {
            let (start, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((start, size))) => break (start, size as usize),
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err("bad chunk size".into()),
                }
                if self.fill().await? == 0 {
                    return Err("connection closed inside a chunked body".into());
                }
            };
            // The chunk, then its CRLF; the last chunk (size 0) ends with trailers and a CRLF.
            if size == 0 {
                self.buf.advance(start);
                loop {
                    if let Some(end) = find(&self.buf, b"\r\n") {
                        let line_empty = end == 0;
                        self.buf.advance(end + 2);
                        if line_empty {
                            return Ok(body.freeze());
                        }
                        continue;
                    }
                    if self.fill().await? == 0 {
                        return Err("connection closed inside chunked trailers".into());
                    }
                }
            }
            while self.buf.len() < start + size + 2 {
                if self.fill().await? == 0 {
                    return Err("connection closed inside a chunk".into());
                }
            }
            self.buf.advance(start);
            body.extend_from_slice(&self.buf[..size]);
            self.buf.advance(size + 2);
        }
    }

    async fn fill(&mut self) -> Result<usize, String> {
        self.buf.reserve(4096);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        self.bytes_in += n as u64;
        Ok(n)
    }
}

enum Framing {
    Length(usize),
    Chunked,
}

type Head = (usize, u16, Framing, bool);

fn parse_head(buf: &[u8], response: bool) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (parsed, status, version, count) = if response {
        let mut r = httparse::Response::new(&mut headers);
        let parsed = r.parse(buf).map_err(|e| format!("bad answer head: {e}"))?;
        (parsed, r.code.unwrap_or(0), r.version, r.headers.len())
    } else {
        let mut r = httparse::Request::new(&mut headers);
        let parsed = r.parse(buf).map_err(|e| format!("bad request head: {e}"))?;
        (parsed, 0, r.version, r.headers.len())
    };
    let httparse::Status::Complete(head_len) = parsed else {
        return Ok(None);
    };
    // HTTP/1.0 closes unless it asks to keep alive; 1.1 keeps alive unless it asks to close.
    let mut close = version == Some(0);
    let mut framing = None;
    for h in &headers[..count] {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| format!("bad content-length {value:?}"))?;
            framing = Some(Framing::Length(n));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().ends_with("chunked")
        {
            framing = Some(Framing::Chunked);
        } else if h.name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                close = true;
            } else if value.contains("keep-alive") {
                close = false;
            }
        }
    }
    // An answer with neither header and no status that forbids a body would be read to the
    // end of the connection; nothing measured here sends one, so it reads as empty and closes.
    if response && framing.is_none() && !(status == 204 || status == 304) {
        close = true;
    }
    let framing = framing.unwrap_or(Framing::Length(0));
    Ok(Some((head_len, status, framing, close)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Idle connections to one target, shared by the tasks that send.
pub struct Pool {
    authority: String,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub fn new(authority: &str) -> Pool {
        Pool {
            authority: authority.to_string(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends one request and reads its answer on an idle connection, or a new one. A
    /// connection that failed or is to be closed is not put back.
    pub async fn request(&self, head: &str, body: Option<&[u8]>) -> Result<Message, String> {
        let idle = self.idle.lock().expect("pool lock").pop();
        let (mut conn, reused) = match idle {
            Some(conn) => (conn, true),
            None => (Conn::connect(&self.authority).await?, false),
        };
        let answer = match exchange(&mut conn, head, body).await {
            Ok(answer) => answer,
            // A kept-alive connection the server had closed while it was idle: the request
            // did not reach it, so it is sent once more on a new connection. Any other
            // failure is the answer's, and is not retried (the server may have acted on it).
            Err(Failure::Stale(_)) if reused => {
                conn = Conn::connect(&self.authority).await?;
                exchange(&mut conn, head, body)
                    .await
                    .map_err(Failure::message)?
            }
            Err(e) => return Err(e.message()),
        };
        if !answer.close {
            self.idle.lock().expect("pool lock").push(conn);
        }
        Ok(answer)
    }
}

enum Failure {
    /// The write failed, or the connection closed or was reset before any of the answer
    /// arrived: what a server's close of an idle connection looks like to the next request.
    Stale(String),
    Other(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Stale(m) | Failure::Other(m) => m,
        }
    }
}

async fn exchange(conn: &mut Conn, head: &str, body: Option<&[u8]>) -> Result<Message, Failure> {
    conn.send(head, body).await.map_err(Failure::Stale)?;
    let before = conn.bytes_in;
    match conn.read(true).await {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(Failure::Stale("connection closed before an answer".into())),
        Err(e) if conn.bytes_in == before => Err(Failure::Stale(e)),
        Err(e) => Err(Failure::Other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_authority_and_path() {
        let t = Target::parse("http://127.0.0.1:8080/hooks/e2e?x=1").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path_and_query, "/hooks/e2e?x=1");
        assert_eq!(Target::parse("http://h:1").unwrap().path_and_query, "/");
        assert_eq!(Target::parse("http://h:1?q").unwrap().path_and_query, "/?q");
        assert!(Target::parse("https://h/").is_err());
        assert!(Target::parse("http:///x").is_err());
    }

    fn head_for(method: &str, addr: &str, path: &str) -> String {
        request_head(
            method,
            &Target::parse(&format!("http://{addr}{path}")).unwrap(),
            &[],
        )
    }

    /// Serves `answers` in turn on one accepted connection, recording the requests' bodies.
    async fn serve_raw(
        answers: Vec<&'static [u8]>,
    ) -> (String, tokio::task::JoinHandle<Vec<Bytes>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = Conn::new(stream);
            let mut bodies = Vec::new();
            for answer in answers {
                let Some(req) = conn.read(false).await.unwrap() else {
                    break;
                };
                bodies.push(req.body);
                conn.write_raw(answer).await.unwrap();
            }
            bodies
        });
        (addr, task)
    }

    #[tokio::test]
    async fn answers_framed_by_length_and_by_chunks_are_read_whole_on_one_connection() {
        let (addr, server) = serve_raw(vec![
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nx-t: 1\r\n\r\n",
            b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        let pool = Pool::new(&addr);
        let head = head_for("POST", &addr, "/p");
        let a = pool.request(&head, Some(b"one")).await.unwrap();
        assert_eq!(
            (a.status, &a.body[..], a.close),
            (202, &b"hello"[..], false)
        );
        let b = pool.request(&head, Some(b"two")).await.unwrap();
        assert_eq!(
            (b.status, &b.body[..], b.close),
            (200, &b"abcdefg"[..], false)
        );
        let c = pool.request(&head, None).await.unwrap();
        assert_eq!((c.status, c.body.len(), c.close), (500, 0, true));
        // The answer said close: the connection is not kept.
        assert!(pool.idle.lock().unwrap().is_empty());
        let bodies = server.await.unwrap();
        assert_eq!(
            bodies,
            vec![Bytes::from("one"), Bytes::from("two"), Bytes::new()]
        );
    }

    #[tokio::test]
    async fn a_request_split_across_reads_and_chunked_is_read_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for part in [
                &b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Enc"[..],
                b"oding: chunked\r\n\r\n5\r\n{\"a\":",
                b"\r\n2\r\n1}\r\n0\r\n\r\n",
            ] {
                s.write_all(part).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            s
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Conn::new(stream);
        let req = conn.read(false).await.unwrap().unwrap();
        assert_eq!(&req.body[..], br#"{"a":1}"#);
        assert!(!req.close);
        drop(client.await.unwrap());
        // The client closed: no further message, and no error.
        assert!(conn.read(false).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            // Each connection answers one request and is then closed without saying so.
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                let mut conn = Conn::new(stream);
                conn.read(false).await.unwrap().unwrap();
                conn.write_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
        });
        let pool = Pool::new(&addr);
        let head = head_for("GET", &addr, "/");
        assert_eq!(pool.request(&head, None).await.unwrap().status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(pool.request(&head, None).await.unwrap().status, 200);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_answer_cut_short_on_a_kept_connection_is_an_error_not_a_resend() {
        let (addr, server) = serve_raw(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-le",
        ])
        .await;
        let pool = Pool::new(&addr);
        let head = head_for("POST", &addr, "/");
        pool.request(&head, Some(b"1")).await.unwrap();
        // The server read the second request and then closed mid-answer. Sending it again on
        // a new connection would wait for an answer that never comes (nothing accepts it).
        let second = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            pool.request(&head, Some(b"2")),
        );
        let err = second.await.expect("not resent").unwrap_err();
        assert!(err.contains("inside a message head"), "{err}");
        assert_eq!(server.await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_http_1_0_answer_without_keep_alive_closes() {
        let (addr, _server) =
            serve_raw(vec![b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
        let pool = Pool::new(&addr);
        let head = head_for("GET", &addr, "/");
        assert!(pool.request(&head, None).await.unwrap().close);
    }
}
