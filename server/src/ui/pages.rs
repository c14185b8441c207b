//! The web view's HTML (maud: checked at compile time, everything escaped unless marked).
//!
//! Every page has one `h1`, a skip link, labelled landmarks and forms, tables with
//! captions and column headers, and marks that say in words what their colour says
//! (`expired`, `in 12 days`). Nothing needs JavaScript.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;

use super::data::{RepoData, Since};
use super::{Chrome, ListRow, SOON_DAYS, ServerData};
use notar_tuf::view::REPO_ADMIN;

/// The stylesheet: high contrast (text at least 7:1 on its background), visible focus.
pub const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1a1a1a; --muted: #4a4a4a; --line: #c8c8c8;
  --link: #0b4f8a; --bad: #8a1010; --bad-bg: #fde8e8; --soon: #6b4500; --soon-bg: #fff3d6; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: #fff; }
a { color: var(--link); }
a:focus, button:focus, input:focus { outline: 3px solid #1a73e8; outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; }
header { border-bottom: 1px solid var(--line); padding: .75rem 1.5rem; display: flex;
  gap: 1.5rem; align-items: center; flex-wrap: wrap; }
header .brand { font-weight: 700; text-decoration: none; color: var(--ink); }
header nav ul { list-style: none; display: flex; gap: 1rem; margin: 0; padding: 0; }
header .who { margin-left: auto; display: flex; gap: .75rem; align-items: center; }
main { padding: 1rem 1.5rem 3rem; max-width: 90rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; word-break: break-all; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
caption { text-align: left; color: var(--muted); padding: .25rem 0; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #f2f2f2; }
code { font: 13px/1.4 ui-monospace, monospace; word-break: break-all; }
.mark { display: inline-block; padding: 0 .4rem; border-radius: .25rem; font-size: .85rem;
  font-weight: 600; margin-left: .35rem; }
.expired, .problem { color: var(--bad); background: var(--bad-bg); }
.soon { color: var(--soon); background: var(--soon-bg); }
.problem, .notice { padding: .75rem 1rem; border-radius: .25rem; }
.notice { background: #eef4fb; }
form.search { display: flex; gap: .5rem; align-items: center; margin-bottom: 1rem; }
input { font: inherit; padding: .3rem .5rem; border: 1px solid #767676; border-radius: .2rem; }
button { font: inherit; padding: .3rem .8rem; border: 1px solid #1a1a1a; background: #fff;
  border-radius: .2rem; cursor: pointer; }
form.login { display: grid; gap: .5rem; max-width: 22rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
.pages { display: flex; gap: 1rem; margin-top: 1rem; }
footer { color: var(--muted); padding: 1rem 1.5rem; border-top: 1px solid var(--line); }
"#;

/// A time as people read it, in UTC.
pub fn when(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

fn machine_time(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn time_tag(at: OffsetDateTime) -> Markup {
    html! { time datetime=(machine_time(at)) { (when(at)) } }
}

/// An expiry, marked when it has passed or comes within [`SOON_DAYS`].
pub fn expiry(at: OffsetDateTime, now: OffsetDateTime) -> Markup {
    let left = at - now;
    html! {
        (time_tag(at))
        @if left <= time::Duration::ZERO {
            span.mark.expired { "expired" }
        } @else if left.whole_days() < SOON_DAYS {
            @let days = left.whole_days();
            span.mark.soon {
                @if days == 0 { "today" } @else if days == 1 { "in 1 day" } @else { "in " (days) " days" }
            }
        }
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The link to a repository's page.
pub fn repo_href(gun: &str) -> String {
    format!("/ui/r/{gun}")
}

fn layout(chrome: &Chrome, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Notar" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/ui/" { "Notar" }
                    nav aria-label="Main" {
                        ul {
                            li { a href="/ui/" { "Repositories" } }
                            @if chrome.server_page { li { a href="/ui/server" { "Server" } } }
                        }
                    }
                    div.who {
                        @if let Some(name) = &chrome.viewer_name {
                            span { "Signed in as " strong { (name) } }
                            form method="post" action="/ui/logout" { button type="submit" { "Log out" } }
                        } @else if chrome.auth {
                            span { "Not signed in" }
                            a href="/ui/login" { "Log in" }
                        }
                    }
                }
                main id="main" {
                    @if chrome.stale_session {
                        p.notice role="status" {
                            "Your session has ended or its token is not valid here; you see what anonymous users see. "
                            a href="/ui/login" { "Log in again" } "."
                        }
                    }
                    (body)
                }
                footer { "Notar " (env!("CARGO_PKG_VERSION")) " · a read-only view of the trust data this server keeps" }
            }
        }
    }
    .into_string()
}

pub fn error(chrome: &Chrome, status: StatusCode, message: &str) -> String {
    let title = status.canonical_reason().unwrap_or("Error");
    layout(
        chrome,
        title,
        html! {
            h1 { (title) }
            p { (message) }
            p { a href="/ui/" { "Back to the repositories" } }
        },
    )
}

pub fn list(
    chrome: &Chrome,
    query: &str,
    rows: &[ListRow],
    total: usize,
    page: usize,
    pages: usize,
) -> String {
    let now = OffsetDateTime::now_utc();
    let page_href = |n: usize| {
        let mut href = format!("/ui/?page={n}");
        if !query.is_empty() {
            href.push_str("&q=");
            href.push_str(
                &percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        }
        href
    };
    layout(
        chrome,
        "Repositories",
        html! {
            h1 { "Repositories" }
            form.search role="search" method="get" action="/ui/" {
                label for="q" { "Search repositories" }
                input id="q" name="q" type="search" value=(query);
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p id="empty" {
                    @if query.is_empty() {
                        "There are no repositories you may see."
                        @if chrome.auth && chrome.viewer_name.is_none() { " " a href="/ui/login" { "Log in" } " to see more." }
                    } @else {
                        "No repository you may see matches “" (query) "”."
                    }
                }
            } @else {
                table id="repositories" {
                    caption {
                        (total) @if total == 1 { " repository" } @else { " repositories" }
                        @if pages > 1 { ", page " (page) " of " (pages) }
                    }
                    thead { tr {
                        th scope="col" { "Repository" }
                        th scope="col" { "Targets version" }
                        th scope="col" { "Last change" }
                        th scope="col" { "Next expiry (root, targets, signers)" }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                td { a href=(repo_href(row.gun.as_str())) { (row.gun.as_str()) } }
                                td { @if let Some(v) = row.targets_version { (v) } @else { "none" } }
                                td { @if let Some(at) = row.updated { (time_tag(at)) } }
                                td { @if let Some(at) = row.next_expiry { (expiry(at, now)) } }
                            }
                        }
                    }
                }
                @if pages > 1 {
                    nav.pages aria-label="Pages" {
                        @if page > 1 { a href=(page_href(page - 1)) rel="prev" { "Previous page" } }
                        @if page < pages { a href=(page_href(page + 1)) rel="next" { "Next page" } }
                    }
                }
            }
        },
    )
}

fn keys(ids: &[String]) -> Markup {
    html! {
        @for (i, id) in ids.iter().enumerate() {
            @if i > 0 { br; }
            code.key { (id) }
        }
    }
}

pub fn repository(chrome: &Chrome, data: &RepoData) -> String {
    let now = OffsetDateTime::now_utc();
    let gun = data.gun.as_str();
    layout(
        chrome,
        gun,
        html! {
            h1 { (gun) }
            @if let Some(problem) = &data.problem {
                p.problem role="alert" {
                    strong { "Clients refuse this repository now: " } (problem)
                    @if data.view().is_some() { " What follows is what they saw last." }
                }
            }
            @if let Some(view) = data.view() {
                section aria-labelledby="tags-h" {
                    h2 id="tags-h" { "Signed tags" }
                    @if view.tags.is_empty() {
                        p { "No tag is signed." }
                    } @else {
                        table id="tags" {
                            caption { (view.tags.len()) " signed, as a verifying pull resolves them" }
                            thead { tr {
                                th scope="col" { "Tag" }
                                th scope="col" { "Digest (sha256)" }
                                th scope="col" { "Size" }
                                th scope="col" { "Signers" }
                                th scope="col" { "Role" }
                                th scope="col" { "Signed" }
                            } }
                            tbody {
                                @for tag in &view.tags {
                                    tr data-tag=(tag.tag) {
                                        th scope="row" { (tag.tag) }
                                        td.digest { code { (tag.digest) } }
                                        td { (size(tag.length)) }
                                        td.signers {
                                            @if tag.signers.is_empty() { (REPO_ADMIN) } @else { (tag.signers.join(", ")) }
                                        }
                                        td { (tag.role.as_str()) }
                                        td {
                                            @match data.since(&tag.tag) {
                                                Some(Since::At(at, v)) => { (time_tag(*at)) " (v" (v) ")" }
                                                Some(Since::NoLaterThan(at, v)) => { "by " (time_tag(*at)) " (v" (v) ")" }
                                                None => {}
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="signers-h" {
                    h2 id="signers-h" { "Signers" }
                    @if view.signers.is_empty() {
                        p { "No signer besides the repository's owner." }
                    } @else {
                        table id="signers" {
                            caption { "Delegated signers and their keys" }
                            thead { tr { th scope="col" { "Signer" } th scope="col" { "Keys" } } }
                            tbody {
                                @for (name, ids) in view.signers.iter().rev() {
                                    tr data-signer=(name) { th scope="row" { (name) } td { (keys(ids)) } }
                                }
                            }
                        }
                    }
                    table id="admin-keys" {
                        caption { "Administrative keys" }
                        thead { tr { th scope="col" { "Key" } th scope="col" { "IDs" } } }
                        tbody {
                            tr data-admin="Root" { th scope="row" { "Root" } td { (keys(&view.root_keys)) } }
                            tr data-admin="Repository" { th scope="row" { "Repository (targets)" } td { (keys(&view.repository_keys)) } }
                        }
                    }
                }
            }
            section aria-labelledby="roles-h" {
                h2 id="roles-h" { "Roles" }
                @if data.roles().is_empty() {
                    p { "The roles could not be read as a client reads them." }
                } @else {
                    table id="roles" {
                        caption { "Every role's current version; marked within " (SOON_DAYS) " days of expiry" }
                        thead { tr {
                            th scope="col" { "Role" }
                            th scope="col" { "Version" }
                            th scope="col" { "Expires" }
                            th scope="col" { "Threshold" }
                            th scope="col" { "Keys" }
                            th scope="col" { "Signed by" }
                        } }
                        tbody {
                            @for role in data.roles() {
                                tr data-role=(role.role) {
                                    th scope="row" { (role.role) }
                                    td { (role.version) }
                                    td { (expiry(role.expires, now)) }
                                    td { (role.threshold) " of " (role.keys.len()) }
                                    td { (keys(&role.keys)) }
                                    td { (keys(&role.signed_by)) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="roots-h" {
                h2 id="roots-h" { "Root history" }
                table id="roots" {
                    caption { (data.roots.len()) " root versions, oldest first" }
                    thead { tr {
                        th scope="col" { "Version" }
                        th scope="col" { "Stored" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Root keys" }
                        th scope="col" { "Targets keys" }
                        th scope="col" { "Change" }
                    } }
                    tbody {
                        @for root in &data.roots {
                            tr {
                                th scope="row" { (root.version) }
                                td { (time_tag(root.stored)) }
                                td { (expiry(root.expires, now)) }
                                td { (keys(&root.root_keys)) }
                                td { (keys(&root.targets_keys)) }
                                td { (root.change) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="audit-h" {
                h2 id="audit-h" { "Recent activity" }
                @if data.audit.is_empty() {
                    p { "No audit record names this repository." }
                } @else {
                    table id="audit" {
                        caption { "The newest " (data.audit.len()) " audit records, newest first" }
                        thead { tr {
                            th scope="col" { "Time" }
                            th scope="col" { "Action" }
                            th scope="col" { "Actor" }
                            th scope="col" { "What" }
                            th scope="col" { "From" }
                        } }
                        tbody {
                            @for record in &data.audit {
                                tr {
                                    td { @if let Ok(at) = OffsetDateTime::from_unix_timestamp(record.created) { (time_tag(at)) } }
                                    td { (record.action) }
                                    td { (record.actor.as_deref().unwrap_or("-")) }
                                    td { code { (record.details) } }
                                    td { (record.remote.as_deref().unwrap_or("-")) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn server(chrome: &Chrome, data: &ServerData, now: OffsetDateTime) -> String {
    layout(
        chrome,
        "Server",
        html! {
            h1 { "Server" }
            section aria-labelledby="horizon-h" {
                h2 id="horizon-h" { "Expiry horizon" }
                dl {
                    dt { "What the server signs (timestamps, snapshots)" }
                    dd { @if let Some(at) = data.server_horizon { (expiry(at, now)) } @else { "nothing yet" } }
                    dt { "What publishers sign (roots, targets, signers)" }
                    dd { @if let Some(at) = data.client_horizon { (expiry(at, now)) } @else { "nothing yet" } }
                }
            }
            section aria-labelledby="attention-h" {
                h2 id="attention-h" { "Needs attention" }
                @if data.attention.is_empty() {
                    p id="no-attention" { "Nothing you may see expires within " (SOON_DAYS) " days." }
                } @else {
                    table id="attention" {
                        caption { "Roles publishers must renew within " (SOON_DAYS) " days, soonest first" }
                        thead { tr { th scope="col" { "Repository" } th scope="col" { "Role" } th scope="col" { "Expires" } } }
                        tbody {
                            @for (gun, role, at) in &data.attention {
                                tr {
                                    td { a href=(repo_href(gun)) { (gun) } }
                                    td { (role) }
                                    td { (expiry(*at, now)) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="config-h" {
                h2 id="config-h" { "Configuration" }
                table id="settings" {
                    caption { "Settings in force (secrets are never shown)" }
                    thead { tr { th scope="col" { "Setting" } th scope="col" { "Value" } } }
                    tbody {
                        @for (name, value) in &data.settings {
                            tr { th scope="row" { (name) } td { code { (value) } } }
                        }
                    }
                }
            }
        },
    )
}

pub fn login(chrome: &Chrome, problem: Option<&str>) -> String {
    layout(
        chrome,
        "Log in",
        html! {
            h1 { "Log in" }
            @if let Some(problem) = problem {
                p.problem role="alert" { (problem) }
            }
            @if !chrome.auth {
                p { "This server runs without authentication: everyone sees every repository." }
            } @else if chrome.issuer {
                p { "Your account on this server's token issuer; you will see the repositories it may pull." }
                form.login method="post" action="/ui/login" {
                    label for="user" { "User name" }
                    input id="user" name="user" type="text" autocomplete="username" required;
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Log in" }
                }
            } @else {
                p { "Tokens for this server come from its token service. Send one as "
                    code { "Authorization: Bearer <token>" } "." }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_marked_in_words_within_thirty_days_and_after() {
        let now = OffsetDateTime::now_utc();
        let text = |at| expiry(at, now).into_string();
        assert!(text(now - time::Duration::hours(1)).contains("expired"));
        assert!(text(now + time::Duration::hours(2)).contains("today"));
        assert!(text(now + time::Duration::hours(30)).contains("in 1 day"));
        assert!(
            text(now + time::Duration::days(12) + time::Duration::hours(1)).contains("in 12 days")
        );
        let later = text(now + time::Duration::days(SOON_DAYS + 1));
        assert!(!later.contains("mark"), "{later}");
    }
}
