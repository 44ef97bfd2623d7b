//! Users with roles, browser sessions and per-user API tokens, on PostgreSQL.

use super::*;

/// The bootstrap admin token was stored before tokens had names.
const BOOTSTRAP_TOKEN_NAME: &str = "admin-token";

fn user_from_row(r: &PgRow) -> UserRecord {
    UserRecord {
        name: r.get("name"),
        role: r.get("role"),
        password_hash: r.get("password_hash"),
        created_at: r.get("created_at"),
    }
}

/// Refuses a change that leaves no admin, inside the transaction that made it. Admin rows
/// are locked first, so two nodes demoting the last two admins at once cannot both pass.
async fn keep_an_admin(c: &mut PgConnection) -> Result<()> {
    let admins: Vec<String> =
        sqlx::query_scalar("SELECT name FROM users WHERE role = 'admin' FOR UPDATE")
            .fetch_all(&mut *c)
            .await?;
    if admins.is_empty() {
        return Err(StoreError::State(
            "this would leave no admin; make another user admin first".into(),
        ));
    }
    Ok(())
}

impl PgStore {
    pub(super) async fn insert_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&u.name)
        .bind(&u.role)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
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
            sqlx::query("SELECT name, role, password_hash, created_at FROM users WHERE name = $1")
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
        let mut tx = self.tx().await?;
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("UPDATE users SET role = COALESCE($1, role), password_hash = COALESCE($2, password_hash) WHERE name = $3")
            .bind(role).bind(password_hash).bind(name)
            .execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if password_hash.is_some() {
            // Whoever had the old password is signed out everywhere.
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        keep_an_admin(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn remove_user(&self, name: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        // Sessions and tokens go with the user (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        keep_an_admin(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn insert_session(&self, s: &SessionRecord) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO sessions (digest, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&s.digest).bind(&s.user_name).bind(&s.csrf).bind(s.created_at).bind(s.expires_at)
            .execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn session_owner(&self, digest: &str, now: i64) -> Result<Option<Identity>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT u.name, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.digest = $1 AND s.expires_at > $2",
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
        self.delete_one("DELETE FROM sessions WHERE digest = $1", digest)
            .await
    }

    pub(super) async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('token:' || $1))")
            .bind(&t.user_name)
            .execute(&mut *tx)
            .await?;
        let taken: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM tokens WHERE user_name = $1 AND COALESCE(name, $2) = $3",
        )
        .bind(&t.user_name)
        .bind(BOOTSTRAP_TOKEN_NAME)
        .bind(&t.name)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict);
        }
        sqlx::query(
            "INSERT INTO tokens (digest, user_name, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&t.digest)
        .bind(&t.user_name)
        .bind(&t.name)
        .bind(t.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn tokens_of(&self, user: &str) -> Result<Vec<TokenRecord>> {
        let rows: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT user_name, COALESCE(name, $1), digest, created_at, last_used_at FROM tokens WHERE user_name = $2 ORDER BY created_at, name",
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
        let done =
            sqlx::query("DELETE FROM tokens WHERE user_name = $1 AND COALESCE(name, $2) = $3")
                .bind(user)
                .bind(BOOTSTRAP_TOKEN_NAME)
                .bind(name)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub(super) async fn token_owner(&self, digest: &str) -> Result<Option<Identity>> {
        let row: Option<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT u.name, u.role, t.last_used_at FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.digest = $1",
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
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE digest = $2")
            .bind(now)
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn executions_per_status(
        &self,
        f: &ExecutionFilter,
    ) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT status, COUNT(*) FROM executions WHERE ($1::TEXT IS NULL OR workflow_id = $1)
               AND ($2::BIGINT IS NULL OR created_at >= $2) AND ($3::BIGINT IS NULL OR created_at < $3) GROUP BY status ORDER BY status",
        )
        .bind(&f.workflow).bind(f.since).bind(f.until)
        .fetch_all(&self.pool).await?)
    }
}
