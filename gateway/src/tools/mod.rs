//! The tools a caller sees: the static ones, and dynamic ones made from ClickHouse
//! views and tables. A [`Catalog`] is one caller's list; [`call`] runs one tool, one
//! module per concern (arguments, the query tools, the schema tools, views/inserts).

pub mod args;
pub mod budget;
pub mod call;
pub mod context;
pub mod dynamic;
pub mod dynamic_calls;
pub mod fleet;
pub mod listing;
pub mod next_step;
pub mod outcome;
pub mod query;
pub mod resources;
pub mod result;
pub mod result_view;
pub mod schema;
pub mod search;
pub mod system_columns;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rmcp::model::Tool;

pub use call::call_tool;
pub use context::ToolContext;
pub use outcome::{CallOutcome, CallStatus};

/// What a tool does when called.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    ExecuteQuery,
    WriteQuery,
    ListDatabases,
    ListTables,
    DescribeTable,
    /// `SELECT * FROM db.view(p = literal, ...)`.
    View(dynamic::ViewTool),
    /// `INSERT INTO db.table (...) VALUES (...)`.
    Insert(dynamic::InsertTool),
    /// The fleet connector's cluster list (answered by `mcp::fleet`, not `call_tool`).
    ListClusters,
    /// Schema search and call-by-name (`tools::search`; answered by the dispatcher,
    /// which holds the caller's catalogs).
    SearchTools,
    CallTool,
}

impl Action {
    /// Whether the tool only reads (drives `readonly=2` and the annotations).
    pub fn is_read(&self) -> bool {
        !matches!(self, Action::WriteQuery | Action::Insert(_))
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub tool: Tool,
    pub action: Action,
}

/// One caller's tools, in the order they are listed.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    /// The `tools/list` payload, serialized once (a JSON array): catalogs are listed
    /// far more often than they are built, and each answer shares these bytes rather
    /// than copying them (`mcp::dispatch::Reply::Spliced`).
    listed_json: Arc<str>,
    /// How many entries were made from ClickHouse objects (`search::is_dynamic`).
    dynamic: usize,
    /// The searched form of this catalog (`mcp::discovery::listed`), built at the
    /// first `tools/list` that needs it rather than at every one.
    searched: OnceLock<Arc<Catalog>>,
}

impl Catalog {
    pub fn new(entries: Vec<Entry>) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.tool.name.to_string(), i))
            .collect();
        let listed_json: Arc<str> =
            serde_json::to_string(&entries.iter().map(|e| &e.tool).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".into())
                .into();
        let dynamic = entries.iter().filter(|e| search::is_dynamic(e)).count();
        Self {
            entries,
            index,
            listed_json,
            dynamic,
            searched: OnceLock::new(),
        }
    }
    /// How many entries were made from ClickHouse objects.
    pub fn dynamic_count(&self) -> usize {
        self.dynamic
    }
    /// This catalog's searched form, `build` run once per catalog.
    pub fn searched_form(&self, build: impl FnOnce(&Catalog) -> Catalog) -> Arc<Catalog> {
        self.searched.get_or_init(|| Arc::new(build(self))).clone()
    }
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).and_then(|i| self.entries.get(*i))
    }
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    pub fn listed_json(&self) -> &str {
        &self.listed_json
    }
    /// The same payload, shared: a reference count, no copy.
    pub fn listed_shared(&self) -> Arc<str> {
        self.listed_json.clone()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
