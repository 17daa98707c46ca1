"""The country page: the figures an economist sends a colleague, straight from the warehouse —
validation of siScore and every baseline against every proxy per year (a chart with the
bootstrap intervals, and the numbers), the district ranking, the regression in the paper's
Table 1 layout (coefficients, clustered standard errors in brackets, stars) and, where the
country trained its own scorer, the internal validation.  A table the warehouse lacks is named
on the page, never a blank.  One self-contained HTML file (inline SVG, no script)."""

from __future__ import annotations

import html
import io
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from siscore_assets.core.maps.web.sources import district_rows, maybe_query

#: Colour per model in the validation chart (siScore first; baselines after, in grey-blues).
PALETTE = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f", "#17becf"]


def stars(p: float) -> str:
    """The paper's convention: *** p < 0.01, ** p < 0.05, * p < 0.1."""
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""


def _f(v, digits: int = 3) -> str:
    try:
        return "–" if v is None or not np.isfinite(float(v)) else f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return html.escape(str(v))


def validation_rows(
    database: str | os.PathLike[str], country: str, subset: str = "all"
) -> pd.DataFrame:
    """`validation_grid` over all usable tiles (``subset`` 'all' where the table has subsets;
    'inhabited': the tiles the habitation filter keeps, every model on the same tiles)."""
    frame = maybe_query(
        database,
        "SELECT * FROM validation_grid WHERE country = ? ORDER BY year, proxy, model",
        [country],
    )
    if len(frame) and "subset" in frame.columns:
        frame = frame[frame["subset"] == subset]
    elif subset != "all":
        frame = frame.iloc[:0]
    return frame.reset_index(drop=True)


def _model_order(frame: pd.DataFrame) -> list[str]:
    """siScore's own models first, then the baselines, each alphabetically."""
    return sorted(set(frame["model"]), key=lambda m: (not str(m).startswith("siscore"), str(m)))


def validation_svg(frame: pd.DataFrame, width: int = 260, height: int = 200) -> str:
    """One small panel per proxy: Spearman rho per year and model, whiskers = bootstrap CI."""
    if frame.empty:
        return ""
    models = _model_order(frame)
    years = sorted(frame["year"].unique())
    panels = []
    for proxy, part in frame.groupby("proxy", sort=True):
        lo = min(0.0, float(np.nanmin(part[["ci_low", "spearman_rho"]].to_numpy())))

        def sy(v: float, lo: float = lo) -> float:
            return 20 + (1 - (v - lo) / (1 - lo)) * (height - 45)

        step = (width - 50) / max(1, len(years))
        body = [
            f'<text x="{width / 2}" y="13" text-anchor="middle" font-size="12">'
            f"{html.escape(str(proxy))}</text>",
            f'<line x1="40" x2="{width - 5}" y1="{sy(0)}" y2="{sy(0)}" stroke="#aaa"/>',
            f'<text x="36" y="{sy(1) + 4}" text-anchor="end" font-size="10">1</text>',
            f'<text x="36" y="{sy(0) + 4}" text-anchor="end" font-size="10">0</text>',
        ]
        for j, year in enumerate(years):
            x0 = 45 + j * step
            body.append(
                f'<text x="{x0 + step / 2}" y="{height - 8}" text-anchor="middle" '
                f'font-size="10">{year}</text>'
            )
            for k, model in enumerate(models):
                row = part[(part["year"] == year) & (part["model"] == model)]
                if row.empty:
                    continue
                r = row.iloc[0]
                x = x0 + (k + 1) * step / (len(models) + 1)
                colour = PALETTE[k % len(PALETTE)]
                body.append(
                    f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{sy(r.ci_low):.1f}" '
                    f'y2="{sy(r.ci_high):.1f}" stroke="{colour}"/>'
                    f'<circle cx="{x:.1f}" cy="{sy(r.spearman_rho):.1f}" r="2.5" fill="{colour}">'
                    f"<title>{html.escape(model)} {year}: rho {_f(r.spearman_rho)} "
                    f"[{_f(r.ci_low)}, {_f(r.ci_high)}]</title></circle>"
                )
        panels.append(f'<svg width="{width}" height="{height}" class="panel">{"".join(body)}</svg>')
    key = " ".join(
        f'<span style="color:{PALETTE[k % len(PALETTE)]}">● {html.escape(m)}</span>'
        for k, m in enumerate(models)
    )
    return f'<div class="chart">{"".join(panels)}</div><p class="key">{key}</p>'


def validation_chart_png(frame: pd.DataFrame) -> bytes | None:
    """The same chart as a PNG (matplotlib), for the Dagster asset page."""
    if frame.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    proxies = sorted(frame["proxy"].unique())
    models = _model_order(frame)
    fig, axes = plt.subplots(1, len(proxies), figsize=(3.2 * len(proxies), 2.8), squeeze=False)
    for ax, proxy in zip(axes[0], proxies):
        part = frame[frame["proxy"] == proxy]
        for k, model in enumerate(models):
            m = part[part["model"] == model].sort_values("year")
            if m.empty:
                continue
            x = m["year"].to_numpy() + (k - len(models) / 2) * 0.08
            err = np.vstack([m["spearman_rho"] - m["ci_low"], m["ci_high"] - m["spearman_rho"]])
            ax.errorbar(
                x,
                m["spearman_rho"],
                yerr=err,
                fmt="o",
                ms=3,
                label=model,
                color=PALETTE[k % len(PALETTE)],
            )
        ax.set_title(proxy, fontsize=9)
        ax.set_ylabel("Spearman rho")
        ax.set_xticks(sorted(part["year"].unique()))
    axes[0][-1].legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _table(frame: pd.DataFrame, cls: str, attrs: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, r in frame.iterrows():
        data = "".join(f' data-{a}="{html.escape(str(r[a]))}"' for a in attrs or [])
        cells = "".join(
            f"<td>{_f(v) if isinstance(v, (float, np.floating)) else html.escape(str(v))}</td>"
            for v in r
        )
        rows.append(f"<tr{data}>{cells}</tr>")
    return f'<table class="{cls}"><tr>{head}</tr>{"".join(rows)}</table>'


def in_years(frame: pd.DataFrame, years: Iterable[int] | None, *columns: str) -> pd.DataFrame:
    """The rows whose ``columns`` (default ``year``) all lie in ``years`` (None: every row): a
    page built for the configured years shows no year the countries file has dropped."""
    if years is None or frame.empty:
        return frame
    keep = {int(y) for y in years}
    mask = np.ones(len(frame), bool)
    for column in columns or ("year",):
        mask &= frame[column].astype(int).isin(keep).to_numpy()
    return frame[mask].reset_index(drop=True)


def district_ranking(
    database: str | os.PathLike[str], country: str, years: Iterable[int] | None = None
) -> pd.DataFrame:
    """Districts of the last year ranked by area-weighted siScore, with the change since the
    first year (of ``years``, when given)."""
    frame = maybe_query(
        database,
        "SELECT year, district_id, n_tiles, score_mean, score_area_mean FROM district_siscore "
        "WHERE country = ?",
        [country],
    )
    frame = in_years(frame, years)
    if frame.empty:
        return frame
    names = district_rows(database, country)
    keep = [c for c in ("district_id", "name", "province") if c in names.columns]
    if "district_id" in keep:
        frame = frame.merge(names[keep], on="district_id", how="left")
        frame = frame[["year", *keep, *[c for c in frame.columns if c not in keep + ["year"]]]]
    first, last = frame["year"].min(), frame["year"].max()
    cur = frame[(frame["year"] == last) & frame["score_area_mean"].notna()].copy()
    base = frame[frame["year"] == first].set_index("district_id")["score_area_mean"]
    cur[f"change_since_{first}"] = cur["score_area_mean"] - cur["district_id"].map(base)
    cur = cur.sort_values(["score_area_mean", "district_id"], ascending=[False, True])
    cur.insert(0, "rank", np.arange(1, len(cur) + 1))
    return cur.drop(columns=["year"]).reset_index(drop=True)


def one_pair(reg: pd.DataFrame) -> pd.DataFrame:
    """The regression rows of one year pair, the longest (then the latest): each pair is a
    partition of its own, and a table mixing them would show one pair's N beside another's
    coefficients (found by review)."""
    if reg.empty:
        return reg
    span = reg["last_year"] - reg["first_year"]
    a, b = (
        reg.assign(span=span)
        .sort_values(["span", "last_year"])
        .iloc[-1][["first_year", "last_year"]]
    )
    return reg[(reg["first_year"] == a) & (reg["last_year"] == b)].reset_index(drop=True)


def regression_table(frame: pd.DataFrame) -> str:
    """Table 1's layout: a row per term with coefficient and stars over (clustered SE), a
    column per model; N, R², clusters and the outcome at the foot."""
    if frame.empty:
        return ""
    models = list(dict.fromkeys(frame["model"]))
    terms = list(dict.fromkeys(t for t in frame["term"] if t != "const")) + ["const"]
    by = {(r.model, r.term): r for r in frame.itertuples(index=False)}
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(m)}</th>" for m in models) + "</tr>"
    body = []
    for term in terms:
        cells = []
        for m in models:
            r = by.get((m, term))
            cells.append(
                "<td></td>"
                if r is None
                else f'<td data-model="{html.escape(m)}" data-term="{html.escape(term)}" '
                f'data-coef="{r.coef!r}" data-se="{r.se!r}">{_f(r.coef)}{stars(r.p)}'
                f'<br><span class="se">({_f(r.se)})</span></td>'
            )
        body.append(f"<tr><th>{html.escape(term)}</th>{''.join(cells)}</tr>")
    first = {m: frame[frame["model"] == m].iloc[0] for m in models}
    for label, col in (
        ("Outcome", "outcome"),
        ("N", "n"),
        ("R²", "r2"),
        ("Clusters", "n_clusters"),
    ):
        vals = "".join(
            f"<td>{_f(first[m][col]) if col == 'r2' else html.escape(str(first[m][col]))}</td>"
            for m in models
        )
        body.append(f'<tr class="foot"><th>{label}</th>{vals}</tr>')
    return f'<table class="regression">{head}{"".join(body)}</table>'


CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:20px auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #e3e3e3;
text-align:right}th:first-child{text-align:left}.regression td{text-align:center}.se{color:#666}
.foot th,.foot td{border-top:1px solid #999}.missing{color:#8a4b00}
.chart{display:flex;flex-wrap:wrap;gap:8px}
.panel{border:1px solid #ddd}.key span{margin-right:10px}"""


def _section(title: str, body: str, missing: str) -> str:
    inner = body or f'<p class="missing">{html.escape(missing)}</p>'
    return f"<section><h2>{html.escape(title)}</h2>{inner}</section>"


def render(
    database: str | os.PathLike[str], country: str, years: Iterable[int] | None = None
) -> str:
    """The page as one HTML string; given ``years`` (the configured ones), tables show only
    those years (a regression only of a pair of them)."""
    val = in_years(validation_rows(database, country), years)
    val_cols = ["year", "proxy", "model", "model_kind", "n", "spearman_rho", "ci_low", "ci_high"]
    val_html = ""
    if len(val):
        n_boot = int(val["n_boot"].max()) if "n_boot" in val.columns else None
        val_html = (
            validation_svg(val)
            + f"<p>Spearman rho of each score with each proxy over all usable tiles; whiskers: "
            f"{'' if n_boot is None else n_boot} bootstrap 95% interval.</p>"
            + _table(
                val[[c for c in val_cols if c in val.columns]],
                "validation",
                ["year", "proxy", "model", "spearman_rho"],
            )
        )
        inh = in_years(validation_rows(database, country, "inhabited"), years)
        if len(inh):  # like for like: over all tiles only siScore carries the filter's zeros
            inh = inh.rename(columns={"spearman_rho": "rho_inhabited"})
            cols = ["year", "proxy", "model", "n", "rho_inhabited", "ci_low", "ci_high"]
            val_html += (
                "<p>Over all tiles siScore carries the habitation filter's zeros and the "
                "baselines do not. Over the tiles the filter calls inhabited every model is "
                "ranked on the same tiles: how well each orders development where people live."
                "</p>"
                + _table(
                    inh[[c for c in cols if c in inh.columns]],
                    "validation-inhabited",
                    ["year", "proxy", "model", "rho_inhabited"],
                )
            )
    dist_val = in_years(
        maybe_query(
            database,
            "SELECT year, proxy, model, n, r2, ci_low, ci_high FROM validation_district "
            "WHERE country = ? ORDER BY year, proxy, model",
            [country],
        ),
        years,
    )
    ranking = district_ranking(database, country, years)
    reg = maybe_query(database, "SELECT * FROM development_regression WHERE country = ?", [country])
    reg = one_pair(in_years(reg, years, "first_year", "last_year"))
    internal = maybe_query(
        database,
        "SELECT model, figure, value FROM validation_internal WHERE country = ?",
        [country],
    )
    internal_html = ""
    if len(internal):
        wide = internal.pivot_table(index="figure", columns="model", values="value", sort=False)
        internal_html = _table(wide.reset_index(), "internal")
    reg_note = ""
    if len(reg):
        r0 = reg.iloc[0]
        reg_note = (
            f"<p>OLS of the change {int(r0.first_year)}→{int(r0.last_year)} per tile; clustered "
            "standard errors in brackets (number of clusters at the foot); *** p&lt;0.01, "
            "** p&lt;0.05, * p&lt;0.1.</p>"
        )
    sections = [
        _section(
            "Validation against proxies and baselines",
            val_html,
            "no validation_grid rows: this country has no proxy layers configured",
        ),
        _section(
            "Validation by district (R²)",
            _table(dist_val, "validation-district") if len(dist_val) else "",
            "no validation_district rows (no districts or no proxies)",
        ),
        _section(
            "District ranking",
            _table(ranking, "ranking", ["district_id"]) if len(ranking) else "",
            "no district_siscore rows: no district layer configured for this country",
        ),
        _section(
            "Regression (Table 1 layout)",
            reg_note + regression_table(reg),
            "no development_regression rows (needs two years, districts and covariates)",
        ),
        _section(
            "Internal validation",
            internal_html,
            "no validation_internal rows: this country uses no trained recipe",
        ),
    ]
    title = f"siScore · {html.escape(country)}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{CSS}</style></head><body><h1>{title}</h1>"
        f'<p><a href="index.html">← map</a></p>{"".join(sections)}</body></html>'
    )
