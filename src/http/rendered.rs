//! Rendered pages of connector lists, served again while nothing they show has changed.
//!
//! Dashboards and clients ask for the same first page over and over. Rendering a page reads
//! 20 connectors with their owners and serialises them; serving a kept one reads only the
//! caller and the workspace's [`ListVersion`], which a list reads anyway (in the same query).
//! Every change to a connector or an owner's account raises that version in the database, so a
//! kept page is never served after a change committed by any server process.

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use uuid::Uuid;

use crate::domain::{Role, Scope};
use crate::store::connectors::ListVersion;

/// Everything besides the stored data that decides how a page renders: who asks (visibility
/// and secret access follow from the caller and their role) and the query, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    workspace_id: Uuid,
    viewer: Uuid,
    role: Role,
    server_admin: bool,
    query: Box<str>,
}

impl PageKey {
    pub fn new(scope: &Scope, raw_query: Option<&str>) -> PageKey {
        PageKey {
            workspace_id: scope.workspace_id,
            viewer: scope.user_id(),
            role: scope.role,
            server_admin: scope.caller.is_admin,
            query: raw_query.unwrap_or_default().into(),
        }
    }
}

/// A page's JSON body and what it was rendered under.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    pub version: ListVersion,
    /// The first moment a connector on the page would render as expired that did not; `None`
    /// when none of them can.
    pub fresh_until: Option<DateTime<Utc>>,
    pub body: Bytes,
}

/// What a kept page costs: its body and key, and an allowance for the cache's own entry.
#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<PageKey, RenderedPage> for ByBytes {
    fn weight(&self, key: &PageKey, page: &RenderedPage) -> u64 {
        (page.body.len() + key.query.len() + 128) as u64
    }
}

/// The kept pages, bounded by bytes; least useful pages go first.
pub struct RenderedPages {
    pages: Option<Cache<PageKey, RenderedPage, ByBytes>>,
}

/// A guess at a page's size, for the cache's initial table.
const TYPICAL_PAGE_BYTES: u64 = 16 << 10;

impl RenderedPages {
    /// Pages up to `capacity_bytes` in all; none at all with 0.
    pub fn new(capacity_bytes: u64) -> RenderedPages {
        let pages = (capacity_bytes > 0).then(|| {
            let items = (capacity_bytes / TYPICAL_PAGE_BYTES).max(16) as usize;
            Cache::with_weighter(items, capacity_bytes, ByBytes)
        });
        RenderedPages { pages }
    }

    /// The body kept for `key`, if it was rendered under `version` and no connector on it has
    /// expired since.
    pub fn get(&self, key: &PageKey, version: ListVersion, now: DateTime<Utc>) -> Option<Bytes> {
        let page = self.pages.as_ref()?.get(key)?;
        let fresh = page.version == version && page.fresh_until.is_none_or(|until| now < until);
        fresh.then_some(page.body)
    }

    pub fn keep(&self, key: PageKey, page: RenderedPage) {
        if let Some(pages) = &self.pages {
            pages.insert(key, page);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn key(query: &str) -> PageKey {
        PageKey {
            workspace_id: Uuid::nil(),
            viewer: Uuid::nil(),
            role: Role::Member,
            server_admin: false,
            query: query.into(),
        }
    }

    #[test]
    fn a_page_is_served_only_under_its_version_and_until_it_goes_stale() {
        let pages = RenderedPages::new(1 << 20);
        let now = Utc::now();
        let until = now + Duration::seconds(10);
        pages.keep(
            key("page=1"),
            RenderedPage {
                version: ListVersion(7),
                fresh_until: Some(until),
                body: Bytes::from_static(b"{}"),
            },
        );
        assert_eq!(
            pages.get(&key("page=1"), ListVersion(7), now).as_deref(),
            Some(&b"{}"[..])
        );
        assert_eq!(pages.get(&key("page=1"), ListVersion(8), now), None);
        assert_eq!(pages.get(&key("page=2"), ListVersion(7), now), None);
        assert_eq!(pages.get(&key("page=1"), ListVersion(7), until), None);
    }

    #[test]
    fn no_page_is_kept_without_memory_for_it() {
        let pages = RenderedPages::new(0);
        let page = RenderedPage {
            version: ListVersion(1),
            fresh_until: None,
            body: Bytes::from_static(b"{}"),
        };
        pages.keep(key(""), page);
        assert_eq!(pages.get(&key(""), ListVersion(1), Utc::now()), None);
    }
}
