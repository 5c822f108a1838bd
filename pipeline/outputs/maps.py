"""Choropleth maps without a boundary file: areas drawn from their postcodes' points.

No boundary file can be downloaded here, but the postcode directory carries each postcode's
latitude and longitude (the real Trafford frame does). Each postcode gets its Voronoi cell
(`shapely.voronoi_polygons`), the cells are merged by area (LSOA or ward) and clipped to the
district's outline (the concave hull of all its postcodes, slightly buffered). Postcodes are public
geography, so the shapes disclose nothing; the values drawn come from protected frames. Without
coordinates there are no maps and no error.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import shapely
from matplotlib.patches import Patch

from pipeline.outputs.charts import PSA21, SEQUENTIAL, ChartWriter, _latest, _styled, _totals, slug

log = logging.getLogger(__name__)
KEY_INDICATORS = ("new_migrant_registrations", "population_churn")


def project(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equirectangular projection in km about the points' mean latitude (fine at district scale)."""
    lat0 = np.deg2rad(np.nanmean(lat))
    return np.deg2rad(lon) * np.cos(lat0) * 6371.0, np.deg2rad(lat) * 6371.0


def build_area_shapes(postcodes: pd.DataFrame, area_column: str) -> dict[str, shapely.Geometry]:
    """Each area's polygon: the union of its postcodes' Voronoi cells, clipped to the district."""
    points = postcodes.dropna(subset=["lat", "lon", area_column]).drop_duplicates(["lat", "lon"])
    if len(points) < 4:
        return {}
    x, y = project(points.lat.to_numpy(float), points.lon.to_numpy(float))
    geoms = shapely.points(x, y)
    multipoint = shapely.multipoints(geoms)
    outline = shapely.concave_hull(multipoint, ratio=0.2).buffer(0.25)
    cells = shapely.voronoi_polygons(multipoint, extend_to=outline.envelope, ordered=True)
    parts = np.array(shapely.get_parts(cells))
    if len(parts) != len(points):
        # fall back: match each cell to the point inside it
        tree = shapely.STRtree(parts)
        index = tree.query(geoms, predicate="within")
        order = np.full(len(points), -1)
        order[index[0]] = index[1]
        parts = np.array([parts[i] if i >= 0 else shapely.Point() for i in order])
    cells = shapely.intersection(parts, outline)
    shapes = {}
    for code, idx in points.groupby(area_column).indices.items():
        shapes[code] = shapely.union_all(cells[idx])
    return shapes


def _draw(ax, shapes: dict, values: pd.Series, title_unit: str):
    valid = values.dropna()
    if valid.empty:
        return None
    edges = np.unique(np.quantile(valid, np.linspace(0, 1, min(5, valid.nunique()) + 1)))
    if len(edges) < 2:
        edges = np.array([valid.min(), valid.max() + 1e-9])
    colours = SEQUENTIAL[-(len(edges) - 1):] if len(edges) - 1 <= len(SEQUENTIAL) else SEQUENTIAL
    for code, shape in shapes.items():
        value = values.get(code, np.nan)
        if pd.isna(value):
            colour, hatch = "#F2F2F2", "///"
        else:
            k = min(np.searchsorted(edges, value, side="right") - 1, len(edges) - 2)
            colour, hatch = colours[max(k, 0)], None
        for poly in shapely.get_parts(shape):
            if poly.is_empty or poly.geom_type != "Polygon":
                continue
            xy = shapely.get_coordinates(poly.exterior)
            ax.fill(xy[:, 0], xy[:, 1], facecolor=colour, edgecolor="white", linewidth=0.8, hatch=hatch)
    handles = [Patch(facecolor=colours[i], label=f"{edges[i]:,.1f} to {edges[i + 1]:,.1f}") for i in range(len(edges) - 1)]
    handles.append(Patch(facecolor="#F2F2F2", hatch="///", label="suppressed or no value"))
    ax.legend(handles=handles, title=title_unit, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    ax.set_aspect("equal")
    ax.axis("off")
    return valid


@_styled
def draw_map(w: ChartWriter, shapes: dict, values: pd.Series, names: pd.Series, name: str, what: str, unit: str,
             level: str, source: str):
    if not shapes:
        return None
    fig = w.figure(9, 7)
    ax = fig.add_subplot()
    valid = _draw(ax, shapes, values, unit)
    if valid is None:
        return None
    fig.subplots_adjust(right=0.72)
    top, low = valid.idxmax(), valid.idxmin()
    title = f"{what}: highest in {names.get(top, top)} ({valid[top]:,.1f}), lowest in {names.get(low, low)} ({valid[low]:,.1f})"
    alt = (f"Map of the district's {level}s shaded by {what.lower()} ({unit}) in five classes, darker meaning higher. "
           f"Highest: {names.get(top, top)}; lowest: {names.get(low, low)}. Areas are drawn from their postcodes "
           f"(Voronoi cells), not official boundaries.")
    return w.save(fig, name, title, alt, "Maps", source + "; areas drawn from postcode points")


def draw_maps(w: ChartWriter, tables) -> None:
    postcodes = tables.postcodes
    shapes = {level: build_area_shapes(postcodes, f"{level}_code") for level in ("ward", "lsoa")}
    pop = tables.population
    names = pd.concat([pop[["area_code", "area_name"]], tables.indicators[["area_code", "area_name"]]]
                      ).drop_duplicates("area_code").set_index("area_code").area_name
    totals = _latest(_totals(pop), "reference_date") if len(pop) else pop
    for level in ("ward", "lsoa"):
        cut = totals[totals.area_type == level].set_index("area_code")
        if cut.empty:
            continue
        margin = ((cut.upper_95 - cut.lower_95) / 2 / cut.estimate * 100).astype(float)
        draw_map(w, shapes[level], margin, names, f"map_{level}_margin", f"Margin of error of {level} estimates",
                 "± % of estimate", level, "COHDMAP estimates")
    ind = tables.indicators
    if ind.empty:
        return
    rows = ind[(ind.breakdown.fillna("All") == "All") & (ind.area_type == "ward")]
    keys = sorted(rows.loc[rows.domain == PSA21, "indicator_id"].unique()) + [k for k in KEY_INDICATORS
                                                                             if k in set(rows.indicator_id)]
    for indicator_id in keys:
        latest = _latest(rows[rows.indicator_id == indicator_id], "period_end").set_index("area_code")
        if latest.empty:
            continue
        draw_map(w, shapes["ward"], latest.value.astype(float), names, f"map_ward_{slug(indicator_id)}",
                 str(latest.indicator_name.iloc[0]), str(latest.unit.iloc[0]), "ward", "Pipeline indicators")
