"""Every keyboard shortcut of the plugin, in one place.

None of them is a napari key (Labels: 1-7, E, P, F, L, M, B, X, Z, -, =, [, ], Ctrl+Z; viewer:
arrows, Ctrl+...; points/shapes: A, D, I, R, S, T, V...). They are bound on the viewer and on each
mask layer (a layer's own keymap wins while it is selected, napari#2799/#7302), as shortcuts of the
Review panel while it has the focus, and every button that has one shows it: "Accept [G]".
"""

from __future__ import annotations

KEYS: dict[str, tuple[str, str]] = {
    # action: (key, button text)
    "accept": ("G", "Accept"),
    "mark_empty": ("N", "No polyp"),
    "prev_unreviewed": (",", "◀ Unreviewed"),
    "next_unreviewed": (".", "Unreviewed ▶"),
    "next_most_uncertain": ("U", "Most uncertain"),
    "reset": ("Shift+R", "Reset frame"),
    "undo_accept": ("Shift+G", "Undo Accept"),
}

HELP = {
    "accept": "The mask of this frame is right (a corrected frame stays corrected)",
    "mark_empty": "This frame shows no polyp: clear its mask",
    "prev_unreviewed": "Go to the previous frame not reviewed yet",
    "next_unreviewed": "Go to the next frame not reviewed yet",
    "next_most_uncertain": "Go to the unreviewed frame the model is least sure about (then the next one)",
    "reset": "Back to the model's proposal, unreviewed",
    "undo_accept": "Take back the last Accept, and go to its frame (Ctrl+Z undoes painting, No polyp and Reset)",
}


def key_of(action: str) -> str:
    return KEYS[action][0]


def button_text(action: str) -> str:
    key, text = KEYS[action]
    return f"{text} [{key}]"


def tooltip(action: str) -> str:
    return f"{HELP[action]} — key {KEYS[action][0]}"


def bind(keymap_provider, run) -> None:
    """Bind every action on a viewer or a layer; ``run(action)`` performs it."""
    for action, (key, _) in KEYS.items():
        keymap_provider.bind_key(key, _handler(run, action), overwrite=True)


def add_shortcuts(widget, run) -> None:
    """The same keys while a panel has the focus (the canvas' keymaps do not see those presses)."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QKeySequence, QShortcut

    for action, (key, _) in KEYS.items():
        shortcut = QShortcut(QKeySequence(key), widget)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(lambda a=action: run(a))


def _handler(run, action: str):
    def press(_viewer_or_layer) -> None:
        run(action)

    press.__name__ = press.__qualname__ = f"depthpolyp_{action}"  # napari's keymaps want a name
    press.__doc__ = HELP[action]
    return press
