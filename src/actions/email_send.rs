//! `email.send`: sends a message over SMTP (lettre): STARTTLS (default), implicit TLS or plain,
//! with optional auth, as text, HTML or both.

use super::http_util::{is_tls, root_cause};
use super::input::{field, Input};
use super::*;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

pub struct EmailSend;

const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[async_trait]
impl Action for EmailSend {
    fn name(&self) -> &'static str {
        "email.send"
    }

    fn inputs(&self) -> Value {
        let addresses = json!({"type": ["string", "array"], "items": {"type": "string"}});
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["host", "from", "to", "subject"],
            "properties": {
                "host": {"type": "string", "description": "SMTP server."},
                "port": {"type": "integer", "minimum": 1, "description": "Default 587 (starttls), 465 (tls), 25 (none)."},
                "tls": {"enum": ["starttls", "tls", "none"], "description": "starttls (default): upgrade and require it; tls: TLS from the start; none: plain text."},
                "username": {"type": "string"},
                "password": {"type": "string", "description": "Keep it in a secret."},
                "ca_cert": {"type": "string", "description": "PEM certificate of a CA to trust besides the public ones (an internal relay)."},
                "from": {"type": "string", "description": "Sender: addr@example.com or \"Name <addr@example.com>\"."},
                "to": addresses.clone(),
                "cc": addresses.clone(),
                "bcc": addresses,
                "reply_to": {"type": "string"},
                "subject": {"type": "string"},
                "text": {"type": "string", "description": "Plain-text body."},
                "html": {"type": "string", "description": "HTML body (with text: both, as alternatives)."},
                "timeout": {"format": "duration", "description": "Default 30s."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "message_id": {"type": "string", "description": "The Message-ID header sent."},
                "recipients": {"type": "array", "items": {"type": "string"}},
                "response": {"type": "string", "description": "The server's final reply (code and text)."}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        let mut out = Vec::new();
        if with.get("text").is_none() && with.get("html").is_none() {
            out.push(problem("text", "required (or html)"));
        }
        if with.get("username").is_some() != with.get("password").is_some() {
            out.push(problem("password", "username and password go together"));
        }
        for k in ["from", "reply_to"] {
            if let Some(a) = static_str(with, k) {
                if let Err(e) = a.parse::<Mailbox>() {
                    out.push(problem(k, format!("{a:?} is not an address: {e}")));
                }
            }
        }
        for k in ["to", "cc", "bcc"] {
            let list = match with.get(k) {
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{k}[{i}]"), v))
                    .collect(),
                Some(v) => vec![(k.to_string(), v)],
                None => vec![],
            };
            for (path, v) in list {
                if let Some(a) = v.as_str().filter(|_| !is_templated(v)) {
                    if let Err(e) = a.parse::<Mailbox>() {
                        out.push(problem(&path, format!("{a:?} is not an address: {e}")));
                    }
                }
            }
        }
        out
    }

    async fn run(&self, input: Value, _: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let (message, message_id, recipients) = build_message(&input)?;
        let host = input.required("host")?;
        let mode = input.str("tls").unwrap_or("starttls");
        let port = match input.get("port").and_then(Value::as_u64) {
            Some(p) => u16::try_from(p).map_err(|_| field("port", "must be at most 65535"))?,
            None => match mode {
                "tls" => 465,
                "none" => 25,
                _ => 587,
            },
        };
        let tls = if mode == "none" {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(host.to_string());
            if let Some(pem) = input.str("ca_cert") {
                let cert =
                    Certificate::from_pem(pem.as_bytes()).map_err(|e| field("ca_cert", e))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| field("ca_cert", e))?;
            if mode == "tls" {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        };
        let timeout = input.duration("timeout", DEFAULT_TIMEOUT)?;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(u), Some(p)) = (input.str("username"), input.str("password")) {
            transport = transport.credentials(Credentials::new(u.to_string(), p.to_string()));
        }
        let response = transport
            .build()
            .send(message)
            .await
            .map_err(|e| smtp_error(host, port, e))?;
        let text: Vec<&str> = response.message().collect();
        Ok(json!({
            "message_id": message_id,
            "recipients": recipients,
            "response": format!("{} {}", response.code(), text.join(" ")),
        }))
    }
}

fn build_message(input: &Input) -> Result<(Message, String, Vec<String>), ActionError> {
    let mailbox = |k: &str, s: &str| {
        s.parse::<Mailbox>()
            .map_err(|e| field(k, format!("{s:?} is not an address: {e}")))
    };
    let from = mailbox("from", input.required("from")?)?;
    let message_id = format!("<{}@{}>", uuid::Uuid::now_v7(), from.email.domain());
    let mut b = Message::builder()
        .from(from)
        .subject(input.required("subject")?)
        .message_id(Some(message_id.clone()));
    let mut recipients = Vec::new();
    for k in ["to", "cc", "bcc"] {
        for a in input.strings(k) {
            let m = mailbox(k, &a)?;
            recipients.push(m.email.to_string());
            b = match k {
                "to" => b.to(m),
                "cc" => b.cc(m),
                _ => b.bcc(m),
            };
        }
    }
    if recipients.is_empty() {
        return Err(field("to", "no recipient"));
    }
    if let Some(r) = input.str("reply_to") {
        b = b.reply_to(mailbox("reply_to", r)?);
    }
    let message = match (input.str("text"), input.str("html")) {
        (Some(t), Some(h)) => b.multipart(MultiPart::alternative_plain_html(
            t.to_string(),
            h.to_string(),
        )),
        (None, Some(h)) => b.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(h.to_string()),
        ),
        (t, None) => b.singlepart(SinglePart::plain(t.unwrap_or_default().to_string())),
    }
    .map_err(|e| ActionError::permanent(format!("cannot build the message: {e}")))?;
    Ok((message, message_id, recipients))
}

/// Says which failure it was; SMTP 4xx replies and network trouble can pass, the rest cannot.
fn smtp_error(host: &str, port: u16, e: lettre::transport::smtp::Error) -> ActionError {
    let cause = root_cause(&e);
    let at = format!("{host}:{port}");
    if e.is_tls() || is_tls(&e) {
        return ActionError::permanent(format!("SMTP: TLS failure with {at}: {cause}"));
    }
    if e.is_timeout() {
        return ActionError::transient(format!("SMTP: timed out talking to {at}"));
    }
    if let Some(code) = e.status() {
        let message = format!("SMTP server {at} refused (reply {code}): {e}");
        return if e.is_transient() {
            ActionError::transient(message)
        } else {
            ActionError::permanent(message)
        };
    }
    if e.is_client() || e.is_response() {
        return ActionError::permanent(format!("SMTP with {at}: {e}"));
    }
    ActionError::transient(format!("SMTP: cannot connect to {at}: {cause}"))
}
