"""A network drawn from the Keras model itself: one box per layer, arrows along its graph.

``architecture_layout`` walks the functional graph (each layer's inbound layers) and returns
where each box goes and which arrows join them; it draws nothing, so a test can read it.
``architecture_figure`` draws that layout. The main path (from the output back through each
layer's first input) is the left column; an input that joins it later, like the photometry
branch, gets a column of its own that ends in the layer where it merges.
"""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

BOX_COLOURS = {"InputLayer": "#d9d9d9", "Conv1D": "#9ecae1", "Dense": "#fdd0a2", "Concatenate": "#a1d99b"}
"""Fill of a layer's box by its class; any other class (activation, dropout, flatten) is white."""

COLUMN_WIDTH = 4.0   # inches per column of boxes
ROW_HEIGHT = 0.52    # inches per row
FONT_SIZE = 11       # points, at the figure's saved size


def _parents(layer):
    """Names of the layers whose outputs ``layer`` takes (empty for an input)."""
    nodes = layer._inbound_nodes
    return [p.operation.name for p in nodes[0].parent_nodes] if nodes else []


def _shape(layer):
    """Output shape without the batch axis: ``903 × 8``."""
    return " × ".join(str(d) for d in tuple(layer.output.shape)[1:])


def describe(layer):
    """(title, detail) of a layer's box: its class and what sets it (filters, kernel, units,
    rate, slope), then its output shape and parameter count."""
    kind = type(layer).__name__
    title = {
        "InputLayer": f"input '{layer.name}'",
        "Conv1D": f"Conv1D: {getattr(layer, 'filters', '?')} filters, "
                  f"kernel {getattr(layer, 'kernel_size', ('?',))[0]}",
        "Dense": f"Dense: {getattr(layer, 'units', '?')} units",
        "LeakyReLU": f"LeakyReLU, slope {float(getattr(layer, 'negative_slope', 0)):g}",
        "Dropout": f"Dropout, rate {float(getattr(layer, 'rate', 0)):g}",
    }.get(kind, kind)
    n = layer.count_params()
    detail = f"out {_shape(layer)}" + (f" · {n:,} parameters" if n else "")
    return title, detail


def architecture_layout(model):
    """Boxes and arrows of ``model``'s graph, nothing drawn.

    Returns ``(boxes, edges)``: ``boxes`` one dict per layer of ``model.layers`` (``name``,
    ``kind`` = class name, ``title``, ``detail``, ``column`` 0 = the main path, ``row`` 0 = top)
    and ``edges`` a list of (from layer, to layer) names, one per input a layer takes.
    """
    parents = {layer.name: _parents(layer) for layer in model.layers}
    place = {}
    main = [model.layers[-1].name]
    while parents[main[-1]]:
        main.append(parents[main[-1]][0])
    for row, name in enumerate(reversed(main)):
        place[name] = (0, row)
    queue, column = list(reversed(main)), 0
    while queue:
        name = queue.pop(0)
        for extra in parents[name][1:]:
            branch = [extra]
            while parents[branch[-1]] and parents[branch[-1]][0] not in place:
                branch.append(parents[branch[-1]][0])
            if branch[-1] in place:
                continue
            column += 1
            row = place[name][1]
            for k, layer_name in enumerate(branch, start=1):
                place[layer_name] = (column, row - k)
            queue += list(reversed(branch))
    missing = [layer.name for layer in model.layers if layer.name not in place]
    if missing:
        raise ValueError(f"architecture_layout: layers {missing} of {model.name!r} are off the graph from its output")
    top = min(row for _, row in place.values())
    boxes = []
    for layer in model.layers:
        column, row = place[layer.name]
        title, detail = describe(layer)
        if layer.name == main[0]:
            title += f" → '{layer.name}'"
        boxes.append(dict(name=layer.name, kind=type(layer).__name__, title=title, detail=detail,
                          column=column, row=row - top))
    edges = [(p, name) for name, ps in parents.items() for p in ps]
    return boxes, edges


def architecture_figure(model, title, min_columns=2):
    """Draw ``model`` as boxes (class, filters × kernel or units, output shape, parameters) joined
    by arrows; a branch that merges gets its own column. The figure is at least ``min_columns``
    columns wide (so that it fills a page's text); fonts are ``FONT_SIZE`` pt. Returns
    ``(fig, boxes, edges)`` (``architecture_layout``)."""
    boxes, edges = architecture_layout(model)
    n_cols = max(max(b["column"] for b in boxes) + 1, min_columns)
    n_rows = max(b["row"] for b in boxes) + 1
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * n_cols, ROW_HEIGHT * n_rows + 0.7))
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, -0.3)
    ax.axis("off")
    offset = 0.5 if max(b["column"] for b in boxes) == 0 else 0.0   # a single column in the middle
    centre = {b["name"]: (b["column"] + 0.5 + offset * (n_cols - 1), b["row"] + 0.5) for b in boxes}
    height = {b["name"]: 0.78 if b["kind"] in BOX_COLOURS else 0.5 for b in boxes}
    for b in boxes:
        x, y = centre[b["name"]]
        h = height[b["name"]]
        ax.add_patch(FancyBboxPatch((x - 0.45, y - h / 2), 0.9, h, boxstyle="round,pad=0,rounding_size=0.08",
                                    facecolor=BOX_COLOURS.get(b["kind"], "white"), edgecolor="0.3", lw=0.8))
        text = f"{b['title']}\n{b['detail']}" if b["kind"] in BOX_COLOURS else f"{b['title']}   ({b['detail']})"
        ax.text(x, y, text, ha="center", va="center", fontsize=FONT_SIZE, linespacing=1.25)
    for src, dst in edges:
        (x0, y0), (x1, y1) = centre[src], centre[dst]
        start = (x0, y0 + height[src] / 2)
        if x0 == x1:
            end, style = (x1, y1 - height[dst] / 2), "arc3"
        else:   # a branch merging: down from its last box, then sideways into the merge's side
            end, style = (x1 + 0.45 if x0 > x1 else x1 - 0.45, y1), "angle,angleA=-90,angleB=180"
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", lw=1.0, color="0.2",
                                                             connectionstyle=style, shrinkA=0, shrinkB=0))
    ax.set_title(f"{title}: {model.count_params():,} parameters", fontsize=FONT_SIZE + 2)
    fig.tight_layout()
    return fig, boxes, edges
