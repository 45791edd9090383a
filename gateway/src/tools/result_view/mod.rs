//! The result view (MCP Apps, SEP-1865): `ui://chmcp/result`, one self-contained HTML
//! document embedded in the binary that hosts with MCP Apps render beside a row result
//! (a sortable table and a chart picked from the result's shape). Tools link to it by
//! `_meta.ui.resourceUri`; hosts without MCP Apps ignore the link and see exactly the
//! text result. `server.result_view: false` removes both the links and the resource
//! (docs/spec-notes.md, "Result view").

use rmcp::model::MetaObject;
use serde_json::{json, Map, Value};

use super::{Action, Entry};
use crate::config::Config;

pub const URI: &str = "ui://chmcp/result";
pub const MIME_TYPE: &str = "text/html;profile=mcp-app";
/// The flat key hosts from before `_meta.ui` read (the reference SDK sets both).
const LEGACY_META_KEY: &str = "ui/resourceUri";

/// The view: HTML, CSS and script inline, no external asset, no network.
pub const HTML: &str = include_str!("result.html");
/// What the document may weigh (it is sent on every `resources/read` of the view).
pub const SIZE_BUDGET: usize = 60 * 1024;

/// Whether a tool's results are rows the view can show.
fn shows(action: &Action) -> bool {
    matches!(action, Action::ExecuteQuery | Action::View(_))
}

/// Links the row-returning tools (`execute_query`, view tools) to the view when
/// `server.result_view` is on; other tools are left as they are.
pub fn link(config: &Config, entries: &mut [Entry]) {
    if !config.server.result_view {
        return;
    }
    for e in entries.iter_mut().filter(|e| shows(&e.action)) {
        let meta = e.tool.meta.get_or_insert_with(MetaObject::default);
        meta.0.insert("ui".into(), json!({"resourceUri": URI}));
        meta.0.insert(LEGACY_META_KEY.into(), json!(URI));
    }
}

/// The resource's `_meta.ui`: no network origin of any kind (connect, assets, frames,
/// base URI), clipboard writes for "copy as CSV", and a border around the view.
fn ui_meta() -> Value {
    json!({"ui": {
        "csp": {"connectDomains": [], "resourceDomains": [], "frameDomains": [], "baseUriDomains": []},
        "permissions": {"clipboardWrite": {}},
        "prefersBorder": true
    }})
}

/// The view's `resources/list` entry, when it is on.
pub fn listed(config: &Config) -> Option<Value> {
    config.server.result_view.then(|| {
        json!({
            "uri": URI,
            "name": "result_view",
            "title": "Query result: table and chart",
            "description": "The MCP Apps view of execute_query and view tool results: a sortable table and a chart.",
            "mimeType": MIME_TYPE,
            "_meta": ui_meta(),
        })
    })
}

/// The `resources/read` answer for `uri` when it names the view and the view is on.
pub fn read(config: &Config, uri: &str) -> Option<Value> {
    (config.server.result_view && uri == URI).then(|| {
        let mut item = Map::new();
        item.insert("uri".into(), json!(URI));
        item.insert("mimeType".into(), json!(MIME_TYPE));
        item.insert("text".into(), json!(HTML));
        item.insert("_meta".into(), ui_meta());
        json!({"contents": [Value::Object(item)]})
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::dynamic::{InsertTool, ViewTool};
    use crate::tools::fleet::{fleet_catalog, FleetCluster};
    use crate::tools::schema::{input_schema, static_entries};
    use crate::tools::Catalog;

    fn entries(c: &Config) -> Vec<Entry> {
        let mut e = static_entries(c);
        e.push(Entry {
            tool: rmcp::model::Tool::new("db_v", "a view", input_schema(vec![], &[])),
            action: Action::View(ViewTool {
                database: "db".into(),
                view: "v".into(),
                params: Vec::new(),
                columns: Vec::new(),
            }),
        });
        e.push(Entry {
            tool: rmcp::model::Tool::new("db_t", "an insert", input_schema(vec![], &[])),
            action: Action::Insert(InsertTool {
                database: "db".into(),
                table: "t".into(),
                columns: Vec::new(),
            }),
        });
        link(c, &mut e);
        e
    }

    fn linked(c: &Config) -> Vec<String> {
        entries(c)
            .iter()
            .filter(|e| e.tool.meta.is_some())
            .map(|e| e.tool.name.to_string())
            .collect()
    }

    #[test]
    fn only_row_tools_link_to_the_view() {
        let c = Config::default();
        assert_eq!(linked(&c), ["execute_query", "db_v"]);
        let exec = serde_json::to_value(&entries(&c)[0].tool).unwrap();
        assert_eq!(exec["_meta"]["ui"]["resourceUri"], URI);
        assert_eq!(exec["_meta"][LEGACY_META_KEY], URI);
    }

    #[test]
    fn fleet_tools_keep_the_link() {
        let c = Config::default();
        let statics = Catalog::new(static_entries(&c));
        let a = Catalog::new(entries(&c));
        let cluster = FleetCluster {
            name: "a".into(),
            description: None,
        };
        let (fleet, _) = fleet_catalog(&statics, &[cluster], &[("a", &a)], &[]);
        let linked: Vec<&str> = fleet
            .entries()
            .iter()
            .filter(|e| {
                e.tool
                    .meta
                    .as_ref()
                    .is_some_and(|m| m.0["ui"]["resourceUri"] == URI)
            })
            .map(|e| e.tool.name.as_ref())
            .collect();
        assert_eq!(linked, ["execute_query", "a__db_v"]);
    }

    #[test]
    fn switched_off_nothing_links_and_nothing_is_served() {
        let mut c = Config::default();
        c.server.result_view = false;
        assert!(linked(&c).is_empty());
        assert_eq!(listed(&c), None);
        assert_eq!(read(&c, URI), None);
    }

    #[test]
    fn the_view_is_listed_and_readable_with_no_network_origin() {
        let c = Config::default();
        let l = listed(&c).unwrap();
        assert_eq!(
            (l["uri"].as_str(), l["mimeType"].as_str()),
            (Some(URI), Some(MIME_TYPE))
        );
        let r = read(&c, URI).unwrap();
        let item = &r["contents"][0];
        assert_eq!(item["mimeType"], MIME_TYPE);
        assert_eq!(item["text"], HTML);
        for k in [
            "connectDomains",
            "resourceDomains",
            "frameDomains",
            "baseUriDomains",
        ] {
            assert_eq!(item["_meta"]["ui"]["csp"][k], json!([]), "{k}");
        }
        assert_eq!(read(&c, "ui://chmcp/other"), None);
    }

    #[test]
    fn the_document_is_self_contained_and_within_its_budget() {
        assert!(
            HTML.len() <= SIZE_BUDGET,
            "{} bytes > {SIZE_BUDGET}",
            HTML.len()
        );
        // No URL at all but the SVG namespace (a name, never fetched): no external
        // script, style, image, font or frame, nothing for a host's CSP to allow.
        let rest = HTML.replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(!rest.contains("://"), "the view must name no URL");
        let lower = rest.to_ascii_lowercase();
        for needle in [
            "@import",
            "<iframe",
            "<link",
            "fetch(",
            "xmlhttprequest",
            "websocket",
            "eventsource",
            "innerhtml",
        ] {
            assert!(!lower.contains(needle), "the view must not use {needle}");
        }
    }
}
