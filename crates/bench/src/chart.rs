//! The `--svg` chart: read-side cost against thread count, one line per primitive.
//!
//! Drawn with plotters' SVG backend only (text is emitted as SVG `<text>`, so no system fonts
//! or font libraries are needed). The y axis is logarithmic: the primitives differ by orders of
//! magnitude.

use std::fmt;
use std::path::Path;

use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
use plotters::prelude::*;

/// One line of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(threads, ns per op)` points, in increasing thread order.
    pub points: Vec<(usize, f64)>,
}

/// Why a chart could not be made.
#[derive(Debug)]
pub enum ChartError {
    /// No series with at least one positive, finite point.
    NoData,
    /// Drawing failed.
    Draw(String),
    /// Writing the file failed.
    Io(std::io::Error),
}

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChartError::NoData => f.write_str("nothing to plot: no positive, finite measurement"),
            ChartError::Draw(e) => write!(f, "drawing the chart failed: {e}"),
            ChartError::Io(e) => write!(f, "writing the chart failed: {e}"),
        }
    }
}

impl std::error::Error for ChartError {}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// Line colours, the first (ours) a strong red; all readable on white.
const COLORS: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
];

/// A logarithmic y axis with labels at 1-2-5 steps of every decade in range.
fn y_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    let mut keys = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                keys.push(v);
            }
        }
        decade *= 10.0;
    }
    let coord: LogCoord<f64> = (lo..hi).log_scale().into();
    coord.with_key_points(keys)
}

/// Renders the chart as an SVG document (the first series is drawn thicker: put ours first).
///
/// ```
/// use revocable_bench::chart::{render_svg, Series};
/// let svg = render_svg("read cost", &[Series { name: "ours".into(), points: vec![(1, 1.5), (2, 1.6)] }]).unwrap();
/// assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
/// ```
pub fn render_svg(title: &str, series: &[Series]) -> Result<String, ChartError> {
    render_svg_with(title, &Axes::READ, series)
}

/// What the axes of a chart say, and whether x is logarithmic.
#[derive(Clone, Copy, Debug)]
pub struct Axes<'a> {
    /// The x axis' description.
    pub x: &'a str,
    /// The y axis' description (y is always logarithmic).
    pub y: &'a str,
    /// Logarithmic x axis (for x spanning decades: 1 … 4,000 threads, batch sizes).
    pub log_x: bool,
}

impl Axes<'_> {
    /// The read-side chart's axes.
    pub const READ: Axes<'static> = Axes {
        x: "reader threads",
        y: "ns per enter+leave, per thread (log)",
        log_x: false,
    };
}

/// [`render_svg`] with other axes.
///
/// ```
/// use revocable_bench::chart::{render_svg_with, Axes, Series};
/// let axes = Axes { x: "idle threads (log)", y: "ns per revoke (log)", log_x: true };
/// let s = [Series { name: "revoke".into(), points: vec![(1, 500.0), (4000, 5000.0)] }];
/// assert!(render_svg_with("update", &axes, &s).unwrap().contains("idle threads"));
/// ```
pub fn render_svg_with(
    title: &str,
    axes: &Axes<'_>,
    series: &[Series],
) -> Result<String, ChartError> {
    // A log x axis is drawn as a linear axis over log10(x), labelled with x itself.
    let fx = |x: usize| {
        if axes.log_x {
            (x.max(1) as f64).log10()
        } else {
            x as f64
        }
    };
    let valid = |&(_, y): &(usize, f64)| y.is_finite() && y > 0.0;
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| valid(p)).map(|p| p.1))
        .collect();
    if ys.is_empty() {
        return Err(ChartError::NoData);
    }
    let max_threads = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let (x_lo, x_hi) = if axes.log_x {
        (-0.1, fx(max_threads) + 0.1)
    } else {
        (0.5, max_threads as f64 + 0.5)
    };
    let y_min = ys.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
    let y_max = ys.iter().copied().fold(0.0, f64::max) * 1.5;

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x_lo..x_hi, y_axis(y_min, y_max))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .x_labels(if axes.log_x {
                (fx(max_threads).ceil() as usize + 1) * 2
            } else {
                max_threads.min(32)
            })
            .x_label_formatter(&|x| {
                if axes.log_x {
                    let v = 10f64.powf(*x);
                    let r = v.round();
                    if (v - r).abs() < 1e-3 * r.max(1.0) && r >= 1.0 {
                        format!("{r}")
                    } else {
                        String::new()
                    }
                } else if (x - x.round()).abs() < 1e-6 {
                    format!("{}", x.round())
                } else {
                    String::new()
                }
            })
            .max_light_lines(1)
            .y_label_formatter(&|y| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else if *y >= 1.0 {
                    format!("{y:.1}")
                } else {
                    format!("{y:.2}")
                }
            })
            .draw()
            .map_err(draw_err)?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let width = if i == 0 { 3 } else { 2 };
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| valid(p))
                .map(|&(x, y)| (fx(x), y))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
                .map_err(draw_err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

/// Renders the chart and writes it to `path`.
pub fn write_svg(path: &Path, title: &str, series: &[Series]) -> Result<(), ChartError> {
    write_svg_with(path, title, &Axes::READ, series)
}

/// [`write_svg`] with other axes.
pub fn write_svg_with(
    path: &Path,
    title: &str,
    axes: &Axes<'_>,
    series: &[Series],
) -> Result<(), ChartError> {
    let svg = render_svg_with(title, axes, series)?;
    std::fs::write(path, svg).map_err(ChartError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Series> {
        vec![
            Series {
                name: "ours".into(),
                points: vec![(1, 1.2), (2, 1.3), (3, 1.4)],
            },
            Series {
                name: "std RwLock".into(),
                points: vec![(1, 18.0), (2, 95.0), (3, 140.0)],
            },
        ]
    }

    #[test]
    fn svg_is_well_formed_and_names_every_series() {
        let svg = render_svg("read cost <&>", &sample()).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("ours") && svg.contains("std RwLock"));
        assert!(svg.contains("&lt;&amp;&gt;"), "title is escaped");
        // Every opened element is closed (crude well-formedness check on the tag balance).
        let opens = svg.matches('<').count();
        let closes = svg.matches('>').count();
        assert_eq!(opens, closes);
        let self_closed = svg.matches("/>").count();
        let end_tags = svg.matches("</").count();
        let start_tags = opens - end_tags - svg.matches("<?").count() - svg.matches("<!").count();
        assert_eq!(start_tags - self_closed, end_tags);
        assert!(svg.matches("<polyline").count() >= 2, "one line per series");
    }

    #[test]
    fn empty_or_invalid_data_is_an_error() {
        assert!(matches!(render_svg("t", &[]), Err(ChartError::NoData)));
        let bad = [Series {
            name: "x".into(),
            points: vec![(1, 0.0), (2, f64::NAN)],
        }];
        assert!(matches!(render_svg("t", &bad), Err(ChartError::NoData)));
    }

    #[test]
    fn single_thread_and_file_output() {
        let one = [Series {
            name: "ours".into(),
            points: vec![(1, 2.0)],
        }];
        let dir =
            std::env::temp_dir().join(format!("revocable-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        write_svg(&path, "t", &one).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("</svg>"));
        let err = write_svg(&dir.join("no/such/dir.svg"), "t", &one).unwrap_err();
        assert!(matches!(err, ChartError::Io(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
