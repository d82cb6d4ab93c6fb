//! Everything around the pure backtest engine of `strategy` that knows a file format or a
//! picture: reading bars, ticks, sentiment and conversion rates from CSV; writing bars and trades
//! as CSV; the terminal table, the SVG plot and the HTML report; parameter search and
//! walk-forward analysis over the engine. It reads from and writes to the readers and writers a
//! caller hands it: it never opens a file, reads the environment or a clock (only `bot` does).

mod data;
mod error;
mod html;
mod metric;
mod optimize;
mod results;
mod space;
mod svg;
mod table;
mod walk_forward;

pub use data::{
    BARS_CSV_HEADER, OhlcOptions, is_ticks_header, parse_time, read_ohlc_csv, read_rates_csv,
    read_sentiment_csv, read_ticks_csv, write_bar_rows, write_bars_csv,
};
pub use error::DataError;
pub use html::render_html_report;
pub use metric::{Constraint, Direction, METRICS, Metric, Objective};
pub use optimize::{Build, Candidate, Market, Outcome, SearchResult, Status, search, with_threads};
pub use results::{render_heatmap_svg, render_ranking, results_json, write_results_csv};
pub use space::{ParamSpec, Space, SpaceError, normalise_name, parse_param};
pub use svg::render_equity_svg;
pub use table::{human_duration, render_table, statistics_rows, write_trades_csv};
pub use walk_forward::{
    Span, WalkForward, Window, WindowKind, WindowResult, parse_walk_forward, walk_forward, windows,
};
