//! Who a credential is, against the real binary (issue 14, items 6 and 7): a token is only as
//! good as its user's current state in the store (exists, role, token epoch), logout,
//! password change, role change, revocation and removal end tokens at once on every shard
//! and across a restart, and failed logins back off the same way whether the account exists
//! or not, with the counts in `/metrics`.

mod common;

use common::{ledger_verify, Answer, Client, Server};
use serde_json::json;

/// A JWT secret the test knows, so it can sign tokens the server never issued.
const SECRET: &str = "a secret the test shares with the server, 32+ bytes";

/// Connections enough that, spread by the kernel over 2 shards, every shard serves some: a
/// change must reach the shard that did not make it.
const CONNECTIONS: usize = 8;

fn connections(server: &Server) -> Vec<Client> {
    (0..CONNECTIONS).map(|_| server.client()).collect()
}

/// `(status, code)` of `GET path` with `credential` on every connection.
fn on_each(clients: &mut [Client], path: &str, credential: &str) -> Vec<(u16, i64)> {
    clients
        .iter_mut()
        .map(|client| {
            let answer = client.get(path, Some(credential));
            (answer.status, answer.code())
        })
        .collect()
}

fn all(expected: (u16, i64)) -> Vec<(u16, i64)> {
    vec![expected; CONNECTIONS]
}

/// A token signed with the server's secret, for any user id, role and epoch.
fn forge(user_id: u64, role: &str, epoch: u32) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = json!({ "sub": user_id.to_string(), "role": role, "exp": exp, "ep": epoch });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The value of an unlabelled counter (or of one line with its labels) in `/metrics`.
fn metric(server: &Server, name: &str) -> u64 {
    common::metric_value(&server.metrics(), name) as u64
}

fn login(client: &mut Client, username: &str, password: &str) -> Answer {
    let body = json!({ "username": username, "password": password }).to_string();
    client.post_json("/v2/user/login", None, &body)
}

fn token_of(answer: &Answer) -> String {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["data"]["token"].as_str().unwrap().to_string()
}

fn new_api_key(server: &Server, token: &str) -> String {
    let answer = server
        .client()
        .post_json("/v2/user/apikey", Some(token), "{}");
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_signed_token_is_only_as_good_as_its_users_current_state() {
    let server = Server::start(2, &[&format!("jwt_secret={SECRET}")]);
    let mut clients = connections(&server);
    // A user id of this deployment's layout (shard 0 of node 0, 1 ms after the id epoch)
    // that no user has, claiming admin: the issue's report got 200 with it.
    let nobody = (1u64 << 22) | 5;
    let forged = forge(nobody, "admin", 0);
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &forged),
        all((401, 1003))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &forged),
        all((401, 1003))
    );
    // A real user's id with a forged admin claim: the role is the store's, not the token's.
    let demo_id: u64 = login(&mut clients[0], "demo", &server.demo_password).json()["data"]
        ["user_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let promoted = forge(demo_id, "admin", 0);
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &promoted),
        all((403, 1005))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &promoted),
        all((200, 0)),
        "the signature is ours and the user exists: it is a user's token"
    );
    // A token from a future epoch (one the user never had) is refused too.
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &forge(demo_id, "user", 9)),
        all((401, 1003))
    );
    assert!(metric(&server, "aiocr_tokens_revoked_total") >= 3 * CONNECTIONS as u64);
}

#[test]
fn a_demoted_or_removed_admin_loses_access_at_once() {
    let server = Server::start(2, &[]);
    let admin = server.admin_token();
    let (boss_id, boss) = server.create_user(&admin, "boss", 5, "admin");
    let key = new_api_key(&server, &boss);
    let mut clients = connections(&server);
    // Every shard has checked (and remembers) the boss's token and key.
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &boss),
        all((200, 0))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &key),
        all((200, 0))
    );

    let demote = json!({ "user_id": boss_id.to_string(), "role": "user" }).to_string();
    let answer = server
        .client()
        .post_json("/v2/admin/users/role", Some(&admin), &demote);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &boss),
        all((401, 1003)),
        "the token (issued as admin) is ended"
    );
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &key),
        all((403, 1005)),
        "the key has the new role"
    );
    let again = token_of(&login(&mut clients[0], "boss", "password-boss"));
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &again),
        all((403, 1005))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &again),
        all((200, 0))
    );

    // Promoted back, then removed.
    let promote = json!({ "username": "boss", "role": "admin" }).to_string();
    let answer = server
        .client()
        .post_json("/v2/admin/users/role", Some(&admin), &promote);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let boss = token_of(&login(&mut clients[0], "boss", "password-boss"));
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &boss),
        all((200, 0))
    );
    let remove = json!({ "user_id": boss_id.to_string() }).to_string();
    let answer = server
        .client()
        .post_json("/v2/admin/users/remove", Some(&admin), &remove);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["data"],
        json!({ "user_id": boss_id.to_string(), "removed": true })
    );
    assert_eq!(
        on_each(&mut clients, "/v2/admin/users", &boss),
        all((401, 1003))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &key),
        all((401, 1003))
    );
    // Gone for logins (the same answer as a name that never existed), gone from the directory.
    let refused = login(&mut clients[0], "boss", "password-boss");
    assert_eq!((refused.status, refused.code()), (401, 1004));
    let found = server
        .client()
        .get("/v2/admin/users?q=boss", Some(&admin))
        .json();
    assert_eq!(found["data"]["users"], json!([]));
    // Refusals: the same user again, an unknown one, oneself, a non-admin.
    let admin_id = login(&mut clients[0], "admin", &server.admin_password).json()["data"]
        ["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let demo = server.demo_token();
    let cases = [
        (remove.clone(), &admin, (400, 1001)),
        (
            json!({ "username": "nobody" }).to_string(),
            &admin,
            (400, 1001),
        ),
        (
            json!({ "user_id": admin_id }).to_string(),
            &admin,
            (403, 1005),
        ),
        (
            json!({ "username": "demo" }).to_string(),
            &demo,
            (403, 1005),
        ),
        ("{}".to_string(), &admin, (400, 1001)),
    ];
    for (body, caller, expected) in cases {
        let answer = server
            .client()
            .post_json("/v2/admin/users/remove", Some(caller), &body);
        assert_eq!((answer.status, answer.code()), expected, "{body}");
    }
    // The name is free: a new user with a new id, whom the old token and key do not name.
    let (new_id, fresh) = server.create_user(&admin, "boss", 0, "user");
    assert_ne!(new_id, boss_id);
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &fresh),
        all((200, 0))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &boss),
        all((401, 1003))
    );

    // A restart changes nothing, and the removed user's ledger still verifies.
    let mut server = server;
    drop(clients);
    assert_eq!(server.terminate(), 0);
    let (code, report) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{report}");
    let server = server.restart();
    let mut clients = connections(&server);
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &boss),
        all((401, 1003))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &key),
        all((401, 1003))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &fresh),
        all((200, 0))
    );
}

#[test]
fn logout_password_change_and_admin_revocation_end_the_old_tokens() {
    let server = Server::start(2, &[]);
    let admin = server.admin_token();
    let (_, first) = server.create_user(&admin, "pat", 0, "user");
    let key = new_api_key(&server, &first);
    let mut clients = connections(&server);
    let second = token_of(&login(&mut clients[0], "pat", "password-pat"));
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &second),
        all((200, 0))
    );

    // Logout ends every session of the user; the API key is not a session and stays.
    let by_key = server
        .client()
        .post_json("/v2/user/logout", Some(&key), "{}");
    assert_eq!((by_key.status, by_key.code()), (403, 1005));
    let out = server
        .client()
        .post_json("/v2/user/logout", Some(&first), "");
    assert_eq!(out.status, 200, "{}", out.text());
    assert_eq!(out.json()["data"], json!({ "logged_out": true }));
    for ended in [&first, &second] {
        assert_eq!(
            on_each(&mut clients, "/v2/user/point", ended),
            all((401, 1003))
        );
    }
    assert_eq!(on_each(&mut clients, "/v2/user/point", &key), all((200, 0)));
    let again = server
        .client()
        .post_json("/v2/user/logout", Some(&first), "");
    assert_eq!((again.status, again.code()), (401, 1003));

    // A password change: checked like a login, then every earlier token ends and the answer
    // carries a token for the new password.
    let third = token_of(&login(&mut clients[0], "pat", "password-pat"));
    let change = |old: &str, new: &str| {
        let body = json!({ "old_password": old, "new_password": new }).to_string();
        server
            .client()
            .post_json("/v2/user/password", Some(&third), &body)
    };
    let wrong = change("not-pats-password", "a-new-password");
    assert_eq!((wrong.status, wrong.code()), (401, 1004));
    let short = change("password-pat", "short");
    assert_eq!((short.status, short.code()), (400, 1001));
    let changed = change("password-pat", "a-new-password");
    let fourth = token_of(&changed);
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &third),
        all((401, 1003))
    );
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &fourth),
        all((200, 0))
    );
    let old = login(&mut clients[0], "pat", "password-pat");
    assert_eq!((old.status, old.code()), (401, 1004));
    let fifth = token_of(&login(&mut clients[0], "pat", "a-new-password"));
    let by_key = server.client().post_json(
        "/v2/user/password",
        Some(&key),
        r#"{"old_password":"a-new-password","new_password":"another-password"}"#,
    );
    assert_eq!((by_key.status, by_key.code()), (403, 1005));

    // An admin ends them all; the user may sign in again.
    let demo = server.demo_token();
    let refused = server.client().post_json(
        "/v2/admin/tokens/revoke",
        Some(&demo),
        r#"{"username":"pat"}"#,
    );
    assert_eq!((refused.status, refused.code()), (403, 1005));
    let unknown = server.client().post_json(
        "/v2/admin/tokens/revoke",
        Some(&admin),
        r#"{"username":"nobody"}"#,
    );
    assert_eq!((unknown.status, unknown.code()), (400, 1001));
    let own = server.client().post_json(
        "/v2/admin/tokens/revoke",
        Some(&admin),
        r#"{"username":"admin"}"#,
    );
    assert_eq!(
        (own.status, own.code()),
        (403, 1005),
        "an admin's own: logout"
    );
    let revoked = server.client().post_json(
        "/v2/admin/tokens/revoke",
        Some(&admin),
        r#"{"username":"pat"}"#,
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert_eq!(revoked.json()["data"]["revoked"], true);
    for ended in [&fourth, &fifth] {
        assert_eq!(
            on_each(&mut clients, "/v2/user/point", ended),
            all((401, 1003))
        );
    }
    let sixth = token_of(&login(&mut clients[0], "pat", "a-new-password"));

    // Ended tokens stay ended after a restart; the newest still works.
    let mut server = server;
    drop(clients);
    assert_eq!(server.terminate(), 0);
    let server = server.restart();
    let mut clients = connections(&server);
    for ended in [&first, &third, &fifth] {
        assert_eq!(
            on_each(&mut clients, "/v2/user/point", ended),
            all((401, 1003))
        );
    }
    assert_eq!(
        on_each(&mut clients, "/v2/user/point", &sixth),
        all((200, 0))
    );
    assert_eq!(on_each(&mut clients, "/v2/user/point", &key), all((200, 0)));
}

/// `(status, code, msg, Retry-After)` of a login.
fn attempt(client: &mut Client, username: &str, password: &str) -> (u16, i64, String, u64) {
    let answer = login(client, username, password);
    let retry_after = answer
        .header("Retry-After")
        .map_or(0, |value| value.parse().unwrap());
    let json = answer.json();
    (
        answer.status,
        json["code"].as_i64().unwrap(),
        json["msg"].as_str().unwrap().to_string(),
        retry_after,
    )
}

#[test]
fn failed_logins_back_off_alike_for_existing_and_unknown_accounts() {
    // A long first lock, so that the attempt after it falls inside it however slow the
    // machine is; the address's limit out of the way (tested below).
    let server = Server::start(
        2,
        &[
            "login_account_free_failures=2",
            "login_address_free_failures=1000",
            "login_backoff_base_ms=60000",
            "login_backoff_max_ms=120000",
        ],
    );
    let mut client = server.client();
    let mut answers = Vec::new();
    for username in ["demo", "no-such-user"] {
        let mut seen = Vec::new();
        // Two free failures and the one that locks: each a plain 1004.
        for _ in 0..3 {
            seen.push(attempt(&mut client, username, "a-wrong-password"));
        }
        // Locked: refused before any check, even with the right password.
        let right = server.demo_password.clone();
        seen.push(attempt(&mut client, username, &right));
        seen.push(attempt(&mut client, username, "a-wrong-password"));
        answers.push(seen);
    }
    let (existing, unknown) = (&answers[0], &answers[1]);
    for answers in [existing, unknown] {
        for failed in &answers[..3] {
            assert_eq!(
                (failed.0, failed.1, failed.3),
                (401, 1004, 0),
                "{answers:?}"
            );
        }
        for locked in &answers[3..] {
            assert_eq!((locked.0, locked.1), (429, 5002), "{answers:?}");
            assert!((1..=60).contains(&locked.3), "Retry-After {}", locked.3);
        }
    }
    // The same answers (the Retry-After aside, which counts down), so the answers say nothing
    // about which name exists.
    let shape = |answers: &Vec<(u16, i64, String, u64)>| {
        answers
            .iter()
            .map(|(status, code, msg, _)| (*status, *code, msg.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(existing), shape(unknown));
    // Another account is not affected, and the locked one's owner is not told anything else.
    let admin = attempt(&mut client, "admin", &server.admin_password.clone());
    assert_eq!(admin.0, 200);
    assert_eq!(metric(&server, "aiocr_logins_failed_total"), 6);
    assert_eq!(
        metric(
            &server,
            "aiocr_login_backoff_refusals_total{scope=\"account\"}"
        ),
        4
    );
    assert!(metric(&server, "aiocr_password_hash_queue_capacity") >= 1);
}

#[test]
fn failed_logins_from_one_address_back_off_whatever_the_names() {
    // One shard: an address gets its free failures once per shard.
    let server = Server::start(
        1,
        &[
            "login_account_free_failures=1000",
            "login_address_free_failures=3",
            "login_backoff_base_ms=60000",
            "login_backoff_max_ms=120000",
        ],
    );
    let token = server.demo_token();
    let mut client = server.client();
    for n in 0..4 {
        let failed = attempt(&mut client, &format!("guess-{n}"), "a-wrong-password");
        assert_eq!((failed.0, failed.1), (401, 1004), "{failed:?}");
    }
    // Locked: any name, any password, from this address.
    let demo = server.demo_password.clone();
    let locked = attempt(&mut client, "demo", &demo);
    assert_eq!((locked.0, locked.1), (429, 5002), "{locked:?}");
    assert!((1..=60).contains(&locked.3), "Retry-After {}", locked.3);
    assert_eq!(metric(&server, "aiocr_logins_failed_total"), 4);
    assert_eq!(
        metric(
            &server,
            "aiocr_login_backoff_refusals_total{scope=\"address\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &server,
            "aiocr_login_backoff_refusals_total{scope=\"account\"}"
        ),
        0
    );
    // Tokens already issued are not affected: the backoff guards password checks only.
    let point = client.get("/v2/user/point", Some(&token));
    assert_eq!(point.status, 200, "{}", point.text());
}

#[test]
fn guesses_the_account_refuses_count_against_the_address() {
    // One shard (an address's failures are per shard); one free failure per account, two
    // per address.
    let server = Server::start(
        1,
        &[
            "login_account_free_failures=1",
            "login_address_free_failures=2",
            "login_backoff_base_ms=60000",
            "login_backoff_max_ms=120000",
        ],
    );
    let mut client = server.client();
    // Two wrong passwords: the second locks the account (the address has spent its two).
    for _ in 0..2 {
        let failed = attempt(&mut client, "demo", "a-wrong-password");
        assert_eq!((failed.0, failed.1), (401, 1004), "{failed:?}");
    }
    // Refused by the account: a guess all the same, the address's third failure.
    let by_account = attempt(&mut client, "demo", "a-wrong-password");
    assert_eq!((by_account.0, by_account.1), (429, 5002), "{by_account:?}");
    // So the address is locked: another account, the right password, refused at once.
    let admin_password = server.admin_password.clone();
    let by_address = attempt(&mut client, "admin", &admin_password);
    assert_eq!((by_address.0, by_address.1), (429, 5002), "{by_address:?}");
    let scope = |scope: &str| {
        metric(
            &server,
            &format!("aiocr_login_backoff_refusals_total{{scope=\"{scope}\"}}"),
        )
    };
    assert_eq!((scope("account"), scope("address")), (1, 1));
    assert_eq!(metric(&server, "aiocr_logins_failed_total"), 2);
}
