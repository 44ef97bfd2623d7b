//! Users with roles, browser sessions and per-user API tokens.

use super::*;

/// The bootstrap admin token was stored before tokens had names.
const BOOTSTRAP_TOKEN_NAME: &str = "admin-token";

fn user_from_row(r: &sqlx::sqlite::SqliteRow) -> UserRecord {
    UserRecord {
        name: r.get("name"),
        role: r.get("role"),
        password_hash: r.get("password_hash"),
        created_at: r.get("created_at"),
    }
}

/// Refuses a change that leaves no admin, inside the transaction that made it.
async fn keep_an_admin(c: &mut SqliteConnection) -> Result<()> {
    let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        .fetch_one(&mut *c)
        .await?;
    if admins == 0 {
        return Err(StoreError::State(
            "this would leave no admin; make another user admin first".into(),
        ));
    }
    Ok(())
}

impl SqliteStore {
    pub(super) async fn insert_user(&self, user: &UserRecord) -> Result<()> {
        self.writer
            .write(user.clone(), move |c, u| {
                async move {
                    sqlx::query("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)")
                        .bind(&u.name).bind(&u.role).bind(&u.password_hash).bind(u.created_at)
                        .execute(&mut *c).await?;
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn all_users(&self) -> Result<Vec<UserRecord>> {
        let rows =
            sqlx::query("SELECT name, role, password_hash, created_at FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    pub(super) async fn one_user(&self, name: &str) -> Result<UserRecord> {
        let row =
            sqlx::query("SELECT name, role, password_hash, created_at FROM users WHERE name = ?")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        Ok(user_from_row(&row))
    }

    pub(super) async fn change_user(
        &self,
        name: &str,
        role: Option<&str>,
        password_hash: Option<&str>,
    ) -> Result<()> {
        let args = (
            name.to_string(),
            role.map(str::to_string),
            password_hash.map(str::to_string),
        );
        self.writer
            .write(args, move |c, args| {
                async move {
                    let (name, role, hash) = &*args;
                    let done = sqlx::query("UPDATE users SET role = COALESCE(?, role), password_hash = COALESCE(?, password_hash) WHERE name = ?")
                        .bind(role).bind(hash).bind(name)
                        .execute(&mut *c).await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    if hash.is_some() {
                        // Whoever had the old password is signed out everywhere.
                        sqlx::query("DELETE FROM sessions WHERE user_name = ?")
                            .bind(name).execute(&mut *c).await?;
                    }
                    keep_an_admin(c).await
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn remove_user(&self, name: &str) -> Result<()> {
        self.writer
            .write(name.to_string(), move |c, name| {
                async move {
                    // Sessions and tokens go with the user (ON DELETE CASCADE).
                    let done = sqlx::query("DELETE FROM users WHERE name = ?")
                        .bind(name.as_str())
                        .execute(&mut *c)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    keep_an_admin(c).await
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        self.writer
            .write(session.clone(), move |c, s| {
                async move {
                    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
                        .bind(s.created_at).execute(&mut *c).await?;
                    sqlx::query("INSERT INTO sessions (digest, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
                        .bind(&s.digest).bind(&s.user_name).bind(&s.csrf).bind(s.created_at).bind(s.expires_at)
                        .execute(&mut *c).await?;
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn session_owner(&self, digest: &str, now: i64) -> Result<Option<Identity>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT u.name, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.digest = ? AND s.expires_at > ?",
        )
        .bind(digest).bind(now)
        .fetch_optional(&self.pool).await?;
        Ok(row.map(|(name, role, csrf)| Identity {
            name,
            role,
            csrf: Some(csrf),
            last_used_at: None,
        }))
    }

    pub(super) async fn end_session(&self, digest: &str) -> Result<()> {
        self.delete_one("DELETE FROM sessions WHERE digest = ?", digest)
            .await
    }

    pub(super) async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        self.writer
            .write(token.clone(), move |c, t| {
                async move {
                    let taken: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM tokens WHERE user_name = ? AND COALESCE(name, ?) = ?",
                    )
                    .bind(&t.user_name).bind(BOOTSTRAP_TOKEN_NAME).bind(&t.name)
                    .fetch_optional(&mut *c).await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict);
                    }
                    sqlx::query("INSERT INTO tokens (digest, user_name, name, created_at) VALUES (?, ?, ?, ?)")
                        .bind(&t.digest).bind(&t.user_name).bind(&t.name).bind(t.created_at)
                        .execute(&mut *c).await?;
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn tokens_of(&self, user: &str) -> Result<Vec<TokenRecord>> {
        let rows: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT user_name, COALESCE(name, ?), digest, created_at, last_used_at FROM tokens WHERE user_name = ? ORDER BY created_at, name",
        )
        .bind(BOOTSTRAP_TOKEN_NAME).bind(user)
        .fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(
                |(user_name, name, digest, created_at, last_used_at)| TokenRecord {
                    user_name,
                    name,
                    digest,
                    created_at,
                    last_used_at,
                },
            )
            .collect())
    }

    pub(super) async fn remove_token(&self, user: &str, name: &str) -> Result<()> {
        self.writer
            .write((user.to_string(), name.to_string()), move |c, args| {
                async move {
                    let (user, name) = &*args;
                    let done = sqlx::query(
                        "DELETE FROM tokens WHERE user_name = ? AND COALESCE(name, ?) = ?",
                    )
                    .bind(user)
                    .bind(BOOTSTRAP_TOKEN_NAME)
                    .bind(name)
                    .execute(&mut *c)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn token_owner(&self, digest: &str) -> Result<Option<Identity>> {
        let row: Option<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT u.name, u.role, t.last_used_at FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.digest = ?",
        )
        .bind(digest)
        .fetch_optional(&self.pool).await?;
        Ok(row.map(|(name, role, last_used_at)| Identity {
            name,
            role,
            csrf: None,
            last_used_at,
        }))
    }

    pub(super) async fn mark_token_used(&self, digest: &str, now: i64) -> Result<()> {
        self.writer
            .write(digest.to_string(), move |c, digest| {
                async move {
                    sqlx::query("UPDATE tokens SET last_used_at = ? WHERE digest = ?")
                        .bind(now)
                        .bind(digest.as_str())
                        .execute(&mut *c)
                        .await?;
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn executions_per_status(
        &self,
        f: &ExecutionFilter,
    ) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT status, COUNT(*) FROM executions WHERE (?1 IS NULL OR workflow_id = ?1)
               AND (?2 IS NULL OR created_at >= ?2) AND (?3 IS NULL OR created_at < ?3) GROUP BY status ORDER BY status",
        )
        .bind(&f.workflow).bind(f.since).bind(f.until)
        .fetch_all(&self.pool).await?)
    }
}
