//! Users, roles, sessions, CSRF and per-user tokens, through the HTTP API; and the web UI's
//! files as the server hands them out.

use crate::common::{figures, spawn_app, spawn_app_with, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// A browser's sign-in: the cookie and the CSRF token it gets.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in(app: &TestApp, name: &str, password: &str) -> Result<(Browser, String), u16> {
    let resp = app
        .http
        .post(format!("{}/api/v1/session", app.base))
        .json(&json!({"name": name, "password": password}))
        .send()
        .await
        .unwrap();
    if !resp.status().is_success() {
        return Err(resp.status().as_u16());
    }
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let browser = Browser {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_string(),
    };
    Ok((browser, set_cookie))
}

/// A request with the session cookie, and the CSRF header when `csrf`.
async fn as_browser(
    app: &TestApp,
    b: &Browser,
    method: Method,
    path: &str,
    body: Option<Value>,
    csrf: bool,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}/api/v1{path}", app.base))
        .header("cookie", &b.cookie);
    if csrf {
        req = req.header("x-csrf-token", &b.csrf);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn with_token(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}/api/v1{path}", app.base))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create_user(app: &TestApp, name: &str, role: &str, password: &str) {
    let (status, v) = app
        .api(
            Method::POST,
            "/users",
            Some(json!({"name": name, "role": role, "password": password})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
}

/// A user's own API token, made through a signed-in browser.
async fn token_for(app: &TestApp, name: &str, password: &str) -> String {
    let (b, _) = sign_in(app, name, password).await.unwrap();
    let (status, v) = as_browser(
        app,
        &b,
        Method::POST,
        "/tokens",
        Some(json!({"name": "cli"})),
        true,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["value"].as_str().unwrap().to_string()
}

/// Walks every route of the table with no credentials, then as a viewer, an editor and an
/// admin: each is refused exactly when the role is below what the table says.
#[tokio::test]
async fn every_api_route_enforces_its_role() {
    let app = spawn_app().await;
    create_user(&app, "vic", "viewer", "viewer-password").await;
    create_user(&app, "eddie", "editor", "editor-password").await;
    let viewer = token_for(&app, "vic", "viewer-password").await;
    let editor = token_for(&app, "eddie", "editor-password").await;
    let table = alertflow::http::route_table();
    assert!(table.len() > 30, "the table lists every route");
    use alertflow::http::auth::Role;
    for route in &table {
        // Every path parameter becomes a name nothing has, so allowed requests end in 404
        // or a complaint about the body, never in the work itself.
        let path = route
            .path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "nothing-here"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{}/api/v1{path}", app.base);
        let anonymous = app
            .http
            .request(route.method.clone(), &url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(
            anonymous, 401,
            "{} {} without credentials",
            route.method, route.path
        );
        for (who, token, role) in [
            ("viewer", viewer.as_str(), Role::Viewer),
            ("editor", editor.as_str(), Role::Editor),
            ("admin", app.token.as_str(), Role::Admin),
        ] {
            let (status, body) = with_token(&app, token, route.method.clone(), &path, None).await;
            if role < route.role {
                assert_eq!(
                    status, 403,
                    "{who}: {} {}: {body}",
                    route.method, route.path
                );
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains(route.role.as_str()),
                    "{body}"
                );
            } else {
                assert!(
                    status != 401 && status != 403,
                    "{who} may {} {}, got {status} {body}",
                    route.method,
                    route.path
                );
            }
        }
    }
    figures(
        "every_api_route_enforces_its_role",
        serde_json::json!({"routes": table.len(), "requests": table.len() * 4, "callers": ["anonymous", "viewer", "editor", "admin"]}),
    );
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_unsafe_requests_need_the_csrf_token() {
    let app = spawn_app().await;
    create_user(&app, "eddie", "editor", "editor-password").await;
    assert_eq!(
        sign_in(&app, "eddie", "wrong-password").await.err(),
        Some(401)
    );
    assert_eq!(
        sign_in(&app, "nobody", "editor-password").await.err(),
        Some(401)
    );
    let (b, set_cookie) = sign_in(&app, "eddie", "editor-password").await.unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");

    let (status, session) = as_browser(&app, &b, Method::GET, "/session", None, false).await;
    assert_eq!(
        (status, session["user"].as_str(), session["role"].as_str()),
        (200, Some("eddie"), Some("editor"))
    );
    // Reads need no CSRF token; changes do, and a wrong one is refused.
    let (status, _) = as_browser(&app, &b, Method::GET, "/keys", None, false).await;
    assert_eq!(status, 200);
    let (status, v) = as_browser(
        &app,
        &b,
        Method::POST,
        "/keys",
        Some(json!({"name": "k1"})),
        false,
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("x-csrf-token"),
        "{v}"
    );
    let forged = Browser {
        cookie: b.cookie.clone(),
        csrf: "forged".into(),
    };
    let (status, _) = as_browser(
        &app,
        &forged,
        Method::POST,
        "/keys",
        Some(json!({"name": "k1"})),
        true,
    )
    .await;
    assert_eq!(status, 403);
    let (status, v) = as_browser(
        &app,
        &b,
        Method::POST,
        "/keys",
        Some(json!({"name": "k1"})),
        true,
    )
    .await;
    assert_eq!(status, 201, "{v}");

    // Sign-out ends the session on the server, not only in the browser.
    let (status, _) = as_browser(&app, &b, Method::DELETE, "/session", None, true).await;
    assert_eq!(status, 204);
    let (status, _) = as_browser(&app, &b, Method::GET, "/keys", None, false).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_cookie_is_secure_behind_an_https_public_url() {
    let app = spawn_app_with(|c| c.public_url = Some("https://alertflow.example.com".into())).await;
    create_user(&app, "sam", "viewer", "viewer-password").await;
    let (_, set_cookie) = sign_in(&app, "sam", "viewer-password").await.unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
}

#[tokio::test]
async fn an_admin_manages_users_resets_passwords_and_keeps_an_admin() {
    let app = spawn_app().await;
    // Bad input names its field.
    for (body, field) in [
        (
            json!({"name": "bad name", "role": "viewer", "password": "long-enough"}),
            "name",
        ),
        (
            json!({"name": "vic", "role": "root", "password": "long-enough"}),
            "role",
        ),
        (
            json!({"name": "vic", "role": "viewer", "password": "short"}),
            "password",
        ),
    ] {
        let (status, v) = app.api(Method::POST, "/users", Some(body)).await;
        assert_eq!(
            (status, v["errors"][0]["path"].as_str()),
            (422, Some(field)),
            "{v}"
        );
    }
    create_user(&app, "vic", "viewer", "first-password").await;
    let (status, v) = app
        .api(
            Method::POST,
            "/users",
            Some(json!({"name": "vic", "role": "viewer", "password": "first-password"})),
        )
        .await;
    assert_eq!(
        (status, v["errors"][0]["path"].as_str()),
        (422, Some("name")),
        "{v}"
    );

    let (b, _) = sign_in(&app, "vic", "first-password").await.unwrap();
    let vic_token = token_for(&app, "vic", "first-password").await;
    let (status, v) = app
        .api(
            Method::PATCH,
            "/users/vic",
            Some(json!({"password": "second-password", "role": "editor"})),
        )
        .await;
    assert_eq!((status, v["role"].as_str()), (200, Some("editor")), "{v}");
    // The reset ends the sessions of the old password; tokens stay, with the new role.
    let (status, _) = as_browser(&app, &b, Method::GET, "/session", None, false).await;
    assert_eq!(status, 401);
    assert_eq!(
        sign_in(&app, "vic", "first-password").await.err(),
        Some(401)
    );
    assert!(sign_in(&app, "vic", "second-password").await.is_ok());
    let (status, _) = with_token(
        &app,
        &vic_token,
        Method::POST,
        "/keys",
        Some(json!({"name": "from-vic"})),
    )
    .await;
    assert_eq!(status, 201);

    let users = app.get("/users").await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "vic"]);
    // The last admin can be neither demoted nor deleted, nor delete themselves.
    let (status, v) = app
        .api(
            Method::PATCH,
            "/users/admin",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("no admin"), "{v}");
    let (status, _) = app.api(Method::DELETE, "/users/admin", None).await;
    assert_eq!(status, 409);
    let (status, _) = app.api(Method::DELETE, "/users/vic", None).await;
    assert_eq!(status, 204);
    let (status, _) = with_token(&app, &vic_token, Method::GET, "/keys", None).await;
    assert_eq!(status, 401, "a deleted user's tokens stop working");
}

#[tokio::test]
async fn each_user_has_named_api_tokens_and_the_admin_token_is_one_of_them() {
    let app = spawn_app().await;
    let tokens = app.get("/tokens").await;
    assert_eq!(tokens[0]["name"], "admin-token");
    assert!(
        tokens[0]["last_used_at"].is_string(),
        "touched by this very request: {tokens}"
    );
    let (status, v) = app
        .api(
            Method::POST,
            "/tokens",
            Some(json!({"name": "admin-token"})),
        )
        .await;
    assert_eq!(
        (status, v["errors"][0]["path"].as_str()),
        (422, Some("name")),
        "{v}"
    );
    let (status, v) = app
        .api(Method::POST, "/tokens", Some(json!({"name": "laptop"})))
        .await;
    assert_eq!(status, 201, "{v}");
    let laptop = v["value"].as_str().unwrap().to_string();
    assert!(laptop.starts_with("aft_"));
    let (status, me) = with_token(&app, &laptop, Method::GET, "/session", None).await;
    assert_eq!(
        (status, me["user"].as_str(), me["role"].as_str()),
        (200, Some("admin"), Some("admin"))
    );
    let (status, _) = app.api(Method::DELETE, "/tokens/laptop", None).await;
    assert_eq!(status, 204);
    let (status, _) = with_token(&app, &laptop, Method::GET, "/keys", None).await;
    assert_eq!(status, 401);
    let (status, _) = app.api(Method::DELETE, "/tokens/laptop", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_schema_and_the_execution_counters_serve_the_ui() {
    let app = spawn_app().await;
    let schema = app.get("/schema").await;
    assert!(schema["x-actions"]["http.request"]["inputs"]["required"]
        .as_array()
        .unwrap()
        .contains(&json!("url")));
    app.apply_ok(
        "name: m\ntrigger: {type: manual}\nsteps: [{id: a, uses: fail, with: {message: no}}]\n",
    )
    .await;
    let id = app.start("m", json!({})).await;
    app.finished(&id).await;
    let counts = app.get("/executions/counts?workflow=m").await;
    assert_eq!(counts["failed"], 1, "{counts}");
    assert_eq!(counts["succeeded"], 0, "{counts}");
    assert_eq!(
        counts.as_object().unwrap().len(),
        7,
        "every status: {counts}"
    );
    let later = app
        .get("/executions/counts?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(later["failed"], 0);
    let listed = app
        .get("/executions?since=2000-01-01T00:00:00Z&summary=true")
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, v) = app
        .api(Method::GET, "/executions?since=yesterday", None)
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn the_web_ui_is_served_with_cache_headers_and_gzip() {
    let app = spawn_app().await;
    let page = app
        .http
        .get(format!("{}/executions/some-id", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "app routes get the page");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    let script = html
        .split("src=\"/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script")
        .to_string();
    let again = app
        .http
        .get(format!("{}/", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let asset = app
        .http
        .get(format!("{}/{script}", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["content-encoding"], "gzip");
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(asset.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let plain = app
        .http
        .get(format!("{}/{script}", app.base))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let body = plain.bytes().await.unwrap();
    assert!(
        body.len()
            > asset.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse::<usize>()
                .unwrap()
    );

    let missing = app
        .http
        .get(format!("{}/assets/gone-123.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (status, v) = app.api(Method::GET, "/no-such-route", None).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
}
