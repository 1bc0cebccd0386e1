//! The admin list of users: newest first in keyset pages, each filter on its own index, the
//! email substring through a trigram index where one pays.

use super::backend::{Arg, sql, sql_owned};
use super::users::{UserRow, select_users};
use super::{Store, StoreError, UserFilter, micros};
use crate::domain::User;

impl Store {
    /// Users matching `filter`, newest first, at most `limit`.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        limit: i64,
    ) -> Result<Vec<User>, StoreError> {
        // Only the conditions the filter names, each a plain equality or range, so that each
        // filter walks its own `(field, created_at, id)` index newest first and stops at the
        // page's end instead of scanning every user (`$n is null or …` would hide the index).
        let search = self.email_search(filter.email_contains.as_deref()).await?;
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg<'_>> = Vec::new();
        let mut condition = |clause: &str, values: Vec<Arg<'static>>| {
            let mut clause = clause.to_owned();
            for value in values {
                args.push(value);
                clause = clause.replacen('?', &format!("${}", args.len()), 1);
            }
            conditions.push(clause);
        };
        if let Some(fragment) = &filter.email_contains {
            if let Some((filter, phrase)) = search {
                condition(filter, vec![phrase.into()]);
            }
            condition(
                "email like ? escape '\\'",
                vec![like_pattern(fragment).into()],
            );
        }
        if let Some(role) = &filter.role {
            condition("role = ?", vec![role.clone().into()]);
        }
        if let Some(verified) = filter.verified {
            condition("email_verified = ?", vec![verified.into()]);
        }
        if let Some(disabled) = filter.disabled {
            condition("disabled = ?", vec![disabled.into()]);
        }
        if let Some((at, id)) = filter.after {
            condition(
                "(created_at, id) < (?, ?)",
                vec![micros(at).into(), id.into()],
            );
        }
        let mut text = select_users("");
        if !conditions.is_empty() {
            text.push_str(" where ");
            text.push_str(&conditions.join(" and "));
        }
        text.push_str(&format!(
            " order by created_at desc, id desc limit ${}",
            args.len() + 1
        ));
        let mut query = sql_owned(text);
        for arg in args {
            query = query.bind(arg);
        }
        let rows: Vec<UserRow> = query.bind(limit).fetch_all(&self.pool).await?;
        rows.into_iter().map(UserRow::user).collect()
    }

    /// The trigram condition for `fragment`, with its phrase, where it pays: the database has
    /// such an index, the fragment has the three characters a trigram needs, and few addresses
    /// contain it. A fragment that many addresses contain is found sooner by walking the users
    /// newest first, which stops at the page's end.
    async fn email_search(
        &self,
        fragment: Option<&str>,
    ) -> Result<Option<(&'static str, String)>, StoreError> {
        let (Some(search), Some(fragment)) = (&self.dialect.email_search, fragment) else {
            return Ok(None);
        };
        if fragment.chars().count() < 3 {
            return Ok(None);
        }
        let phrase = format!("\"{}\"", fragment.replace('"', "\"\""));
        let (matches,): (i64,) = sql(search.count_up_to)
            .bind(phrase.as_str())
            .bind(FEW_EMAIL_MATCHES + 1)
            .fetch_one(&self.pool)
            .await?;
        Ok((matches <= FEW_EMAIL_MATCHES).then_some((search.filter, phrase)))
    }
}

/// Up to this many addresses containing a fragment, the trigram index finds them faster than a
/// newest-first walk that filters every user (measured in `bench/run`, scale).
const FEW_EMAIL_MATCHES: i64 = 1_000;

/// A substring pattern with `%`, `_` and the escape character itself taken literally.
fn like_pattern(fragment: &str) -> String {
    let mut pattern = String::from("%");
    for c in fragment.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
