//! The store's contract, operation by operation, on the backend the suite runs on (SQLite, then
//! PostgreSQL in `scripts/test`): the rules every backend must keep, checked on `Store` directly
//! rather than through HTTP. A new backend is done when this file passes on it.

use crate::support::fresh_database;
use latchkey::clock::Clock;
use latchkey::domain::{
    Email, Event, Locale, Metadata, Name, Revoke, RevokeReason, Role, User, UserChange, UserFilter,
};
use latchkey::store::{
    CodeCheck, Effects, LoginExpects, NewEmailToken, NewMail, NewSession, NewUser, Rotate,
    Rotation, Store, StoreError, TokenPurpose,
};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("time")
}

async fn store() -> (Store, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&fresh_database(&dir).await)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, dir)
}

fn new_user(email: &str, role: &str, verified: bool, at: OffsetDateTime) -> NewUser {
    NewUser {
        user: User {
            id: Uuid::now_v7(),
            email: Email::parse(email).expect("email"),
            email_verified: verified,
            name: None,
            phone: None,
            role: Role::from_trusted(role.to_owned()),
            disabled: false,
            metadata: Metadata::from_trusted(Default::default()),
            created_at: at,
            updated_at: at,
            last_login_at: None,
            locale: None,
        },
        password_hash: Some(HASH.to_owned()),
        self_registered: true,
    }
}

async fn insert(store: &Store, email: &str, role: &str, at: OffsetDateTime) -> User {
    let new = new_user(email, role, true, at);
    let committed = store
        .insert_user(&new, None, &Effects::default())
        .await
        .expect("insert user");
    assert!(committed.is_empty(), "nothing queued, nothing revoked");
    new.user
}

fn session(user_id: Uuid, token_hash: &str, at: OffsetDateTime) -> NewSession {
    NewSession {
        id: Uuid::now_v7(),
        user_id,
        refresh_token_hash: token_hash.to_owned(),
        user_agent: Some("contract".to_owned()),
        ip: Some("127.0.0.1".to_owned()),
        created_at: at,
        expires_at: at + Duration::days(30),
        assurance: latchkey::domain::Assurance::from_stored(at, "pwd,otp"),
        grant: None,
    }
}

#[tokio::test]
async fn a_user_is_stored_whole_and_its_address_is_unique() {
    let (store, _dir) = store().await;
    let mut new = new_user("ada@example.com", "user", false, start());
    new.user.name = Some(Name::parse("Ada").expect("name"));
    let _ = store
        .insert_user(&new, None, &Effects::default())
        .await
        .expect("insert");
    assert_eq!(
        store.user(new.user.id).await.expect("read"),
        Some(new.user.clone())
    );
    let found = store
        .credentials_by_email(&new.user.email)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.password_hash.as_deref(), Some(HASH));
    assert!(found.self_registered);
    let again = new_user("ada@example.com", "user", false, start());
    assert!(matches!(
        store.insert_user(&again, None, &Effects::default()).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.user(Uuid::now_v7()).await.expect("read"), None);
}

#[tokio::test]
async fn an_update_changes_only_what_it_names_and_keeps_the_last_admin() {
    let (store, _dir) = store().await;
    let admin = insert(&store, "admin@example.com", "admin", start()).await;
    let change = UserChange {
        name: Some(Some(Name::parse("Grace").expect("name"))),
        locale: Some(Some(Locale::parse("de-AT").expect("locale"))),
        ..UserChange::default()
    };
    let (user, revoked) = store
        .update_user(
            admin.id,
            &change,
            None,
            start(),
            &Effects::default(),
            Some("admin"),
        )
        .await
        .expect("update");
    assert_eq!(user.name.as_ref().map(Name::as_str), Some("Grace"));
    assert_eq!(user.locale.as_ref().map(Locale::as_str), Some("de-AT"));
    assert_eq!(user.role.as_str(), "admin");
    assert!(revoked.is_empty());
    let demote = UserChange {
        role: Some(Role::from_trusted("user".to_owned())),
        ..UserChange::default()
    };
    assert!(matches!(
        store
            .update_user(
                admin.id,
                &demote,
                None,
                start(),
                &Effects::default(),
                Some("admin")
            )
            .await,
        Err(StoreError::LastAdmin)
    ));
    assert_eq!(
        store
            .user(admin.id)
            .await
            .expect("read")
            .expect("kept")
            .role
            .as_str(),
        "admin"
    );
    assert!(matches!(
        store
            .delete_user(admin.id, start(), &Effects::default(), Some("admin"))
            .await,
        Err(StoreError::LastAdmin)
    ));
    assert!(matches!(
        store
            .update_user(
                Uuid::now_v7(),
                &change,
                None,
                start(),
                &Effects::default(),
                None
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn users_are_listed_newest_first_by_filter_and_keyset_pages() {
    let (store, _dir) = store().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let role = if i % 2 == 0 { "admin" } else { "user" };
        let at = start() + Duration::seconds(i);
        ids.push(
            insert(&store, &format!("u{i}@example.com"), role, at)
                .await
                .id,
        );
    }
    let all = store
        .list_users(&UserFilter::default(), 10)
        .await
        .expect("list");
    let listed: Vec<Uuid> = all.iter().map(|u| u.id).collect();
    assert_eq!(listed, ids.iter().rev().copied().collect::<Vec<_>>());
    let admins = UserFilter {
        role: Some("admin".to_owned()),
        ..UserFilter::default()
    };
    assert_eq!(store.list_users(&admins, 10).await.expect("list").len(), 3);
    let like = UserFilter {
        email_contains: Some("u3".to_owned()),
        ..UserFilter::default()
    };
    let found = store.list_users(&like, 10).await.expect("list");
    assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), vec![ids[3]]);
    let first = store
        .list_users(&UserFilter::default(), 2)
        .await
        .expect("page");
    let last = first.last().expect("a page");
    let next = UserFilter {
        after: Some((last.created_at, last.id)),
        ..UserFilter::default()
    };
    let second = store.list_users(&next, 2).await.expect("page");
    assert_eq!(
        second.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
}

/// The substring filter (on SQLite through its trigram index, on PostgreSQL through pg_trgm)
/// finds exactly the addresses containing the fragment, wildcards taken literally, and stays
/// in step with deletions.
#[tokio::test]
async fn the_email_substring_search_is_literal_and_follows_deletions() {
    let (store, _dir) = store().await;
    let ada = insert(&store, "ada.lovelace@example.com", "user", start()).await;
    let grace = insert(&store, "grace_hopper@example.org", "user", start()).await;
    let _other = insert(&store, "graceXhopper@example.org", "user", start()).await;
    let search = |fragment: &str| UserFilter {
        email_contains: Some(fragment.to_owned()),
        ..UserFilter::default()
    };
    let ids = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    let found = store
        .list_users(&search("lovelace@"), 10)
        .await
        .expect("list");
    assert_eq!(ids(found), vec![ada.id]);
    let found = store.list_users(&search("e_h"), 10).await.expect("list");
    assert_eq!(
        ids(found),
        vec![grace.id],
        "`_` is a character, not a wildcard"
    );
    let found = store.list_users(&search("a%e"), 10).await.expect("list");
    assert!(found.is_empty(), "`%` is a character, not a wildcard");
    assert_eq!(
        store
            .list_users(&search("example."), 10)
            .await
            .expect("list")
            .len(),
        3
    );
    let _ = store
        .delete_user(ada.id, start(), &Effects::default(), None)
        .await
        .expect("delete");
    assert!(
        store
            .list_users(&search("lovelace"), 10)
            .await
            .expect("list")
            .is_empty()
    );
    let again = insert(&store, "ada.lovelace@example.com", "user", start()).await;
    let found = store
        .list_users(&search("lovelace"), 10)
        .await
        .expect("list");
    assert_eq!(ids(found), vec![again.id], "one entry per live address");
}

#[tokio::test]
async fn a_login_is_recorded_only_against_the_account_as_checked() {
    let (store, _dir) = store().await;
    let user = insert(&store, "ada@example.com", "user", start()).await;
    let login = |hash: &'static str| LoginExpects {
        password_hash: Some(hash),
        role: "user",
        email_verified: true,
        attempt: None,
    };
    let event = Event::session_revoked(user.id, Uuid::now_v7(), RevokeReason::Logout, start());
    let stale = store
        .record_login(
            &session(user.id, "t0", start()),
            &login("other"),
            None,
            &event,
        )
        .await
        .expect("login");
    assert!(
        stale.is_none(),
        "a changed password hash must refuse the session"
    );
    let recorded = store
        .record_login(&session(user.id, "t1", start()), &login(HASH), None, &event)
        .await
        .expect("login")
        .expect("recorded");
    assert_eq!(recorded.last_login_at, Some(start()));
    assert_eq!(
        store
            .live_sessions(user.id, start())
            .await
            .expect("list")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_refresh_token_rotates_once_repeats_in_grace_and_revokes_on_reuse() {
    let (store, _dir) = store().await;
    let user = insert(&store, "ada@example.com", "user", start()).await;
    let new = session(user.id, "first", start());
    let other = new_user("other@example.com", "user", true, start());
    store
        .insert_user(
            &other,
            Some(&session(Uuid::nil(), "x", start())),
            &Effects::default(),
        )
        .await
        .expect_err("a session of an unknown user is refused");
    assert!(
        store.user(other.user.id).await.expect("read").is_none(),
        "nothing of a refused write is left"
    );
    let expects = LoginExpects {
        password_hash: Some(HASH),
        role: "user",
        email_verified: true,
        attempt: None,
    };
    let event = Event::session_revoked(user.id, new.id, RevokeReason::Logout, start());
    store
        .record_login(&new, &expects, None, &event)
        .await
        .expect("login")
        .expect("recorded");
    let clock = Clock::manual(start());
    let rotate = |presented: &'static str, successor: &'static str| Rotate {
        presented_hash: presented,
        successor_hash: successor,
        successor_sealed: b"sealed",
        ttl: Duration::days(30),
        grace: Duration::seconds(10),
        clock: &clock,
        client_id: None,
    };
    let unknown = store
        .rotate_refresh_token(&rotate("nope", "n"))
        .await
        .expect("rotate");
    assert!(matches!(unknown, Rotation::Invalid));
    let first = store
        .rotate_refresh_token(&rotate("first", "second"))
        .await
        .expect("rotate");
    assert!(matches!(first, Rotation::Rotated { session_id, .. } if session_id == new.id));
    assert!(
        matches!(&first, Rotation::Rotated { assurance, .. } if *assurance == new.assurance),
        "a refresh keeps how and when the holder authenticated"
    );
    let repeat = store
        .rotate_refresh_token(&rotate("first", "other"))
        .await
        .expect("rotate");
    assert!(
        matches!(repeat, Rotation::Repeated { ref successor_sealed, ref assurance, .. }
            if successor_sealed == b"sealed" && *assurance == new.assurance)
    );
    clock.advance(Duration::seconds(11));
    let reuse = store
        .rotate_refresh_token(&rotate("first", "third"))
        .await
        .expect("rotate");
    assert!(matches!(
        reuse,
        Rotation::Reused { session_id, ref after } if session_id == new.id && after.revoked == vec![new.id]
    ));
    let after = store
        .rotate_refresh_token(&rotate("second", "fourth"))
        .await
        .expect("rotate");
    assert!(
        matches!(after, Rotation::Invalid),
        "the reused session is dead"
    );
    let revocations = store.revocations_after(0, clock.now()).await.expect("log");
    assert_eq!(
        revocations.iter().map(|r| r.session_id).collect::<Vec<_>>(),
        vec![new.id]
    );
    let kinds: Vec<String> = store
        .events(100)
        .await
        .expect("outbox")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(kinds.contains(&"REFRESH_TOKEN_REUSED".to_owned()));
    assert!(kinds.contains(&"SESSION_REVOKED".to_owned()));
    let pruned = store
        .prune(clock.now() + Duration::days(60), Duration::seconds(10))
        .await
        .expect("prune");
    assert!(
        pruned >= 3,
        "the expired session, its tokens and its revocation go"
    );
}

#[tokio::test]
async fn revoking_all_but_one_keeps_that_one() {
    let (store, _dir) = store().await;
    let user = insert(&store, "ada@example.com", "user", start()).await;
    let sessions = [
        session(user.id, "a", start()),
        session(user.id, "b", start()),
    ];
    let expects = LoginExpects {
        password_hash: Some(HASH),
        role: "user",
        email_verified: true,
        attempt: None,
    };
    for s in &sessions {
        let event = Event::session_revoked(user.id, s.id, RevokeReason::Logout, start());
        store
            .record_login(s, &expects, None, &event)
            .await
            .expect("login");
    }
    let revoked = store
        .revoke_sessions(
            user.id,
            Revoke::AllBut(sessions[0].id),
            RevokeReason::Logout,
            start(),
        )
        .await
        .expect("revoke");
    assert_eq!(
        revoked.revoked,
        vec![sessions[1].id],
        "it tells what it revoked"
    );
    assert!(!revoked.mail_queued);
    let live = store.live_sessions(user.id, start()).await.expect("list");
    assert_eq!(
        live.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![sessions[0].id]
    );
    assert_eq!(
        store
            .revoke_session_of_token("a", RevokeReason::Logout, start())
            .await
            .expect("revoke")
            .revoked,
        vec![sessions[0].id]
    );
    assert!(
        store
            .live_sessions(user.id, start())
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_reset_code_counts_wrong_tries_and_dies_at_the_fifth() {
    let (store, _dir) = store().await;
    let user = insert(&store, "ada@example.com", "user", start()).await;
    let group = Uuid::now_v7();
    let effects = Effects {
        tokens: vec![NewEmailToken {
            token_hash: format!("code-{group}"),
            user_id: user.id,
            purpose: TokenPurpose::ResetCode,
            group,
            created_at: start(),
            expires_at: start() + Duration::minutes(15),
        }],
        ..Effects::default()
    };
    let _ = store
        .replace_email_tokens(user.id, &[TokenPurpose::ResetCode], start(), &effects)
        .await
        .expect("store code");
    let wrong = |_: &str| "wrong".to_owned();
    let right = |grp: &str| format!("code-{grp}");
    assert_eq!(
        store
            .check_code(user.id, TokenPurpose::ResetCode, &right, start())
            .await
            .expect("check"),
        CodeCheck::Matches(format!("code-{group}"))
    );
    for _ in 0..5 {
        assert_eq!(
            store
                .check_code(user.id, TokenPurpose::ResetCode, &wrong, start())
                .await
                .expect("check"),
            CodeCheck::Wrong
        );
    }
    assert_eq!(
        store
            .check_code(user.id, TokenPurpose::ResetCode, &right, start())
            .await
            .expect("check"),
        CodeCheck::NoLiveCode
    );
    let reset = store
        .set_password_by_token(
            &format!("code-{group}"),
            [TokenPurpose::ResetLink, TokenPurpose::ResetCode],
            "new-hash",
            start(),
            &Effects::default(),
        )
        .await
        .expect("reset");
    assert!(reset.is_none(), "a dead code resets nothing");
}

#[tokio::test]
async fn a_confirmation_link_is_spent_once() {
    let (store, _dir) = store().await;
    let mut new = new_user("ada@example.com", "user", false, start());
    new.user.email_verified = false;
    let effects = Effects {
        tokens: vec![NewEmailToken {
            token_hash: "link".to_owned(),
            user_id: new.user.id,
            purpose: TokenPurpose::VerifyEmail,
            group: Uuid::now_v7(),
            created_at: start(),
            expires_at: start() + Duration::days(1),
        }],
        ..Effects::default()
    };
    let _ = store
        .insert_user(&new, None, &effects)
        .await
        .expect("insert");
    assert_eq!(
        store
            .email_token_owner("link", TokenPurpose::VerifyEmail, start())
            .await
            .expect("owner")
            .map(|u| u.id),
        Some(new.user.id)
    );
    let confirmed = store
        .confirm_email("link", start())
        .await
        .expect("confirm")
        .expect("live");
    assert!(confirmed.email_verified);
    assert!(
        store
            .confirm_email("link", start())
            .await
            .expect("confirm")
            .is_none()
    );
    let later = start() + Duration::days(2);
    assert!(
        store
            .email_token_owner("link", TokenPurpose::VerifyEmail, later)
            .await
            .expect("owner")
            .is_none()
    );
}

#[tokio::test]
async fn a_queued_mail_is_claimed_by_one_worker_and_settled_only_by_its_claim() {
    let (store, _dir) = store().await;
    let mail = NewMail {
        id: Uuid::now_v7(),
        user_id: None,
        recipient: "ada@example.com".to_owned(),
        subject: "Hello".to_owned(),
        sealed_body: b"sealed".to_vec(),
        created_at: start(),
    };
    let committed = store
        .queue(&Effects {
            mails: vec![mail.clone()],
            ..Effects::default()
        })
        .await
        .expect("queue");
    assert!(committed.mail_queued, "the mail worker must hear of it");
    let lease = Duration::minutes(1);
    let claimed = store.claim_mail(start(), lease, 10).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![mail.id]
    );
    assert!(
        store
            .claim_mail(start(), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let reclaimed = store
        .claim_mail(start() + Duration::minutes(2), lease, 10)
        .await
        .expect("claim");
    assert_eq!(reclaimed.len(), 1, "an unsettled claim runs out");
    store
        .mail_sent(&claimed[0], start())
        .await
        .expect("stale settle");
    let again = store
        .claim_mail(start() + Duration::minutes(4), lease, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "the stale claim settled nothing");
    store.mail_sent(&again[0], start()).await.expect("settle");
    assert!(
        store
            .claim_mail(start() + Duration::minutes(10), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_runs_out() {
    let (store, _dir) = store().await;
    let until = start() + Duration::seconds(30);
    assert!(
        store
            .take_lease("relay", "a", start(), until)
            .await
            .expect("lease")
    );
    assert!(
        !store
            .take_lease("relay", "b", start(), until)
            .await
            .expect("lease")
    );
    assert!(
        store
            .take_lease("relay", "a", start(), until)
            .await
            .expect("renew")
    );
    let later = until + Duration::seconds(1);
    assert!(
        store
            .take_lease("relay", "b", later, later + Duration::seconds(30))
            .await
            .expect("lease")
    );
}

#[tokio::test]
async fn deleting_a_user_takes_its_sessions_and_writes_its_events() {
    let (store, _dir) = store().await;
    let user = insert(&store, "ada@example.com", "user", start()).await;
    let new = session(user.id, "t", start());
    let expects = LoginExpects {
        password_hash: Some(HASH),
        role: "user",
        email_verified: true,
        attempt: None,
    };
    let event = Event::session_revoked(user.id, new.id, RevokeReason::Logout, start());
    store
        .record_login(&new, &expects, None, &event)
        .await
        .expect("login");
    let revoked = store
        .delete_user(user.id, start(), &Effects::default(), None)
        .await
        .expect("delete");
    assert_eq!(revoked.revoked, vec![new.id]);
    assert!(store.user(user.id).await.expect("read").is_none());
    assert!(matches!(
        store
            .delete_user(user.id, start(), &Effects::default(), None)
            .await,
        Err(StoreError::NotFound)
    ));
}

fn oauth_client(client_id: &str, at: OffsetDateTime) -> latchkey::domain::OAuthClient {
    latchkey::domain::OAuthClient {
        client_id: client_id.to_owned(),
        name: "Worker".to_owned(),
        confidential: true,
        redirect_uris: vec!["https://app.example/cb".to_owned()],
        post_logout_redirect_uris: Vec::new(),
        scopes: vec!["openid".to_owned(), "jobs".to_owned()],
        first_party: false,
        created_at: at,
        updated_at: at,
    }
}

#[tokio::test]
async fn a_clients_own_tokens_share_one_session_until_it_is_revoked() {
    let (store, _dir) = store().await;
    let client = oauth_client("worker", start());
    let _ = store
        .insert_oauth_client(&client, Some("hash"), &Effects::default())
        .await
        .expect("client");
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let issue = |fresh| store.issue_service_token("worker", "jobs", fresh, start());
    assert_eq!(issue(first).await.expect("issue"), Some(first));
    assert_eq!(
        issue(second).await.expect("issue"),
        Some(first),
        "one session"
    );
    assert_eq!(
        store
            .issue_service_token("nobody", "jobs", second, start())
            .await
            .expect("issue"),
        None
    );

    let committed = store
        .revoke_service_session("worker", first, start())
        .await
        .expect("revoke");
    assert_eq!(committed.revoked, vec![first]);
    let revocations = store.revocations_after(0, start()).await.expect("read");
    assert!(revocations.iter().any(|r| r.session_id == first));
    assert_eq!(
        issue(second).await.expect("issue"),
        Some(second),
        "a new one after"
    );
    let stale = store
        .revoke_service_session("worker", first, start())
        .await
        .expect("revoke");
    assert!(
        stale.revoked.is_empty(),
        "a token of the revoked session ends nothing"
    );
    let again = store
        .revoke_service_session("worker", second, start())
        .await
        .expect("revoke");
    assert_eq!(again.revoked, vec![second]);
    let nothing = store
        .revoke_service_session("worker", second, start())
        .await
        .expect("revoke");
    assert!(nothing.revoked.is_empty(), "nothing live to revoke");

    // Removing the client revokes its live one too.
    let third = Uuid::now_v7();
    assert_eq!(issue(third).await.expect("issue"), Some(third));
    let removed = store
        .delete_oauth_client("worker", start())
        .await
        .expect("delete");
    assert_eq!(removed.revoked, vec![third]);
}

#[tokio::test]
async fn withdrawing_a_consent_revokes_only_that_clients_sessions_of_that_user() {
    let (store, _dir) = store().await;
    let ada = insert(&store, "ada@example.com", "user", start()).await;
    let client = oauth_client("dashboard", start());
    let _ = store
        .insert_oauth_client(&client, Some("hash"), &Effects::default())
        .await
        .expect("client");
    let scopes = vec!["openid".to_owned(), "jobs".to_owned()];
    let event = Event::oauth_consent_granted(ada.id, "dashboard", &scopes, start());
    store
        .grant_consent(ada.id, "dashboard", &scopes, &event, start())
        .await
        .expect("consent");
    let consents = store.consents(ada.id).await.expect("list");
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].client_name, "Worker");
    assert_eq!(consents[0].scopes, scopes);

    let withdrawn = store
        .revoke_consent(ada.id, "dashboard", start())
        .await
        .expect("withdraw");
    assert!(
        withdrawn.is_some_and(|c| c.revoked.is_empty()),
        "no session was open"
    );
    assert!(store.consents(ada.id).await.expect("list").is_empty());
    assert!(
        store
            .consented_scopes(ada.id, "dashboard")
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .revoke_consent(ada.id, "dashboard", start())
            .await
            .expect("withdraw")
            .is_none(),
        "nothing to withdraw"
    );
}
