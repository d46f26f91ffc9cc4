"""Drawing of the synthetic dashcam videos that `sample.py` plans: one numpy frame at a time.

A pinhole camera 1.3 m above a flat road looks straight ahead. Whatever does not move (sky,
skyline, road, verges, light and fog) is drawn once per video; each frame copies that
background and adds what moves: lane dashes and crossings (scrolling with the ego's
distance), roadside props, road users, rain or snow, then the collision flash and the
sideways shift of a swerve or a crash.

About 400 lines: one scene drawer; its parts share the camera model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

CAM_HEIGHT = 1.3  # metres above the road
FOG_COLOR = (190, 192, 196)
# Per-channel gain of each light condition: how much daylight is left, and its tint.
LIGHT = {
    "daylight": (1.0, 1.0, 1.0),
    "dawn": (0.86, 0.74, 0.7),
    "dusk": (0.62, 0.5, 0.44),
    "night": (0.16, 0.17, 0.23),
}
SKY = {"cloudy": (165, 170, 178), "rain": (125, 128, 135), "snow": (200, 202, 208)}
WHITE, YELLOW = (235, 235, 235), (230, 190, 40)
# Lane lines (lateral metres, colour, dashed), road edges, verge and props of each road type.
ROADS: dict[str, dict[str, Any]] = {
    "highway": dict(
        lines=[(-5.25, WHITE, 0), (-1.75, WHITE, 1), (1.75, WHITE, 1), (5.25, WHITE, 0)],
        verge="grass",
        props="posts",
    ),
    "urban street": dict(
        lines=[(-1.75, YELLOW, 0), (1.75, WHITE, 1)], verge="pavement", props="buildings"
    ),
    "intersection": dict(
        lines=[(-1.75, YELLOW, 0), (1.75, WHITE, 1)], verge="pavement", props="buildings", zebra=1
    ),
    "roundabout": dict(lines=[(-1.75, WHITE, 1), (1.75, WHITE, 1)], verge="grass", props="trees"),
    "parking lot": dict(lines=[], verge="pavement", props="parked", edge=7.0),
    "rural road": dict(
        lines=[(-5.25, WHITE, 0), (-1.75, YELLOW, 1), (5.25, WHITE, 0)],
        verge="grass",
        props="trees",
    ),
}
SIZES = {  # (width, height) in metres
    "car": (1.8, 1.5),
    "truck": (2.5, 3.4),
    "bus": (2.6, 3.2),
    "motorcycle": (0.8, 1.5),
    "bicycle": (0.6, 1.7),
    "pedestrian": (0.55, 1.75),
    "object": (1.2, 0.9),
}


class Scene:
    """The frames of one planned video (`SamplePlan`) at a given size.

    `frames()` yields `round(duration * fps)` uint8 RGB arrays of shape (height, width, 3);
    the same buffer is reused, so a consumer must copy (PyAV's `from_ndarray` does).
    """

    def __init__(self, plan: Any, width: int, height: int) -> None:
        meta = plan.entry.metadata
        self.plan, self.w, self.h = plan, width, height
        self.f, self.cx, self.hy = 0.9 * width, width / 2, int(0.45 * height)
        fps = plan.fps
        self.n = round(plan.duration * fps)
        t = np.arange(self.n) / fps
        speed = np.interp(t, plan.speed_times, plan.speed_values)
        self.dist = np.concatenate([[0.0], np.cumsum(speed[:-1] / fps)])  # metres driven
        self.shift = np.interp(t, plan.yaw_times, plan.yaw_values) * width
        self.impact = None if plan.impact is None else round(plan.impact * fps)
        self.tracks = []
        for tr in plan.tracks:
            x = np.interp(t, tr.times, tr.xs)
            z = tr.zs[0] - self.dist if tr.world else np.interp(t, tr.times, tr.zs)
            self.tracks.append((tr.type, tr.color, x, z))
        self.weather, self.light = meta.weather or "clear", meta.light or "daylight"
        self.road = ROADS.get(meta.road or "", ROADS["urban street"])
        self.edge = self.road.get("edge", 5.25)
        self.gain = LIGHT.get(self.light, LIGHT["daylight"])
        self.fog_dist = 22.0 if self.weather == "fog" else 450.0
        self.rng = np.random.default_rng([*plan.draw_seed, 2])
        self.illum = np.ones((height, width), np.float32)
        self._background(meta.scene or "urban")
        self._markings()
        self._particles()

    def _fog(self, z: np.ndarray | float) -> np.ndarray | float:
        """Share of fog colour in what lies z metres away."""
        return 1.0 - np.exp(-np.asarray(z) / self.fog_dist)

    def _background(self, scene: str) -> None:
        """Sky with skyline, road, verges; fog and light applied; night headlight pool."""
        h, w, hy, f = self.h, self.w, self.hy, self.f
        bg = np.empty((h, w, 3), np.float32)
        sky = np.array(SKY.get(self.weather, (110, 160, 225)), np.float32)
        top, horizon = sky * 0.8, sky * 0.55 + 255 * 0.45
        frac = (np.arange(hy) / max(hy - 1, 1))[:, None]
        bg[:hy] = (top * (1 - frac) + horizon * frac)[:, None, :]
        # A skyline (buildings or hills), far away so mostly hazed.
        cols = np.arange(w)
        if scene in ("urban", "suburban"):
            edges = np.cumsum(self.rng.integers(max(2, w // 40), max(3, w // 12), size=w))
            tall = self.rng.uniform(0.02, 0.14 if scene == "urban" else 0.06, size=w)
            height_px = (tall[np.searchsorted(edges, cols, side="right")] * h).astype(int)
            tone = np.array((105, 110, 125), np.float32)
        else:
            ph = self.rng.uniform(0, 6.3, 3)
            wave = sum(np.sin(cols / w * k * 6.3 + p) for k, p in zip((1.3, 3.1, 7.7), ph))
            height_px = ((0.035 + 0.012 * wave) * h).astype(int).clip(0, hy)
            tone = np.array((85, 115, 90), np.float32)
        rows = np.arange(hy)[:, None]
        mask = rows >= hy - height_px[None, :]
        bg[:hy][mask] = tone * 0.6 + horizon * 0.4
        # Ground: depth of each row below the horizon, lateral metres of each pixel.
        y = np.arange(hy, h)
        z = f * CAM_HEIGHT / (y - hy + 0.5)
        xw = (cols[None, :] - self.cx + 0.5) * z[:, None] / f
        verge = {"grass": (70, 115, 55), "pavement": (140, 138, 132)}[self.road["verge"]]
        asphalt = (62, 63, 70) if self.weather == "rain" else (88, 89, 94)
        if self.weather == "snow":
            verge, asphalt = (222, 224, 230), (120, 121, 126)
        ground = np.empty((h - hy, w, 3), np.float32)
        ground[:] = verge
        on_road = np.abs(xw) <= self.edge
        ground[on_road] = asphalt
        if self.road["verge"] == "pavement":  # a kerb line where the pavement starts
            kerb = (np.abs(xw) > self.edge) & (np.abs(xw) <= self.edge + 0.25)
            ground[kerb] = (175, 172, 165)
        bg[hy:] = ground
        depth = np.concatenate([np.full(hy, 400.0), z])
        a = self._fog(depth)[:, None, None]
        bg = bg * (1 - a) + np.array(FOG_COLOR, np.float32) * a
        bg *= np.array(self.gain, np.float32)
        if self.light == "night":  # dipped headlights light a pool of road ahead
            d = ((y - hy) / (h - hy))[:, None]
            spread = 0.1 * w + 0.5 * w * d
            pool = 3.5 * np.exp(-(((cols[None, :] - self.cx) / spread) ** 2)) * d**1.2
            self.illum[hy:] += pool.astype(np.float32)
            bg[hy:] *= self.illum[hy:, :, None]
        self.bg = np.clip(bg, 0, 255).astype(np.uint8)

    def _markings(self) -> None:
        """Pixels of lane lines and zebra crossings, each with its depth and dash pattern."""
        h, hy, f, w = self.h, self.hy, self.f, self.w
        ys, xs, zs, period, dash, colors = [], [], [], [], [], []
        y = np.arange(hy + 1, h)
        z = f * CAM_HEIGHT / (y - hy + 0.5)
        for x_line, color, dashed in self.road["lines"]:
            center = self.cx + f * x_line / z
            half = np.maximum(0.5, f * 0.07 / z)
            for yy, zz, c, hw in zip(y, z, center, half):
                span = range(max(0, math.floor(c - hw)), min(w, math.ceil(c + hw)))
                ys += [yy] * len(span)
                xs += list(span)
                zs += [zz] * len(span)
                colors += [color] * len(span)
                period += [12.0] * len(span)
                dash += [4.0 if dashed else 12.0] * len(span)
        if self.road.get("zebra"):  # a crossing every 90 m: bars 0.6 m wide, 4 m deep
            cols = np.arange(w)
            xw = (cols[None, :] - self.cx + 0.5) * z[:, None] / f
            bars = (np.abs(xw) < self.edge - 0.3) & ((xw + 30.0) % 1.2 < 0.6)
            r, c = np.nonzero(bars)
            ys += list(y[r])
            xs += list(c)
            zs += list(z[r])
            colors += [WHITE] * len(r)
            period += [90.0] * len(r)
            dash += [4.0] * len(r)
        self.m_y, self.m_x = np.array(ys, np.intp), np.array(xs, np.intp)
        self.m_z = np.array(zs, np.float64)
        self.m_period, self.m_dash = np.array(period), np.array(dash)
        if not len(self.m_y):
            self.m_rgb = np.zeros((0, 3), np.uint8)
            return
        a = self._fog(self.m_z)[:, None]
        rgb = np.array(colors, np.float64) * (1 - a) + np.array(FOG_COLOR) * a
        # Paint reflects headlights at night: the same illumination as the road under it.
        rgb *= np.array(self.gain) * self.illum[self.m_y, self.m_x][:, None]
        self.m_rgb = np.clip(rgb, 0, 255).astype(np.uint8)

    def _particles(self) -> None:
        """Rain streaks or snow flakes: start positions and speeds, in pixels."""
        h, w, rng = self.h, self.w, self.rng
        self.kind = self.weather if self.weather in ("rain", "snow") else None
        # Grows with the frame's side, not its area: big frames get bigger drops rather than
        # ever more of them, which x264 would pay for in bytes and time.
        scale = (w * h / (320 * 180)) ** 0.5
        count = max(8, round((110 if self.kind == "rain" else 200) * scale))
        self.p_x0, self.p_y0 = rng.uniform(0, w, count), rng.uniform(0, h, count)
        if self.kind == "rain":
            self.p_v = rng.uniform(1.5, 2.2, count) * h  # pixels per second
            self.p_len = np.arange(max(3, h // 22))
        else:
            self.p_v = rng.uniform(0.1, 0.25, count) * h
            self.p_phase = rng.uniform(0, 6.3, count)
            size = max(1, round(w / 320))
            self.p_dy, self.p_dx = (a.ravel() for a in np.mgrid[0:size, 0:size])
        bright = max(self.gain) if self.light != "night" else 0.55
        tone = (175, 180, 195) if self.kind == "rain" else (240, 240, 245)
        self.p_rgb = np.array([min(255, int(c * bright)) for c in tone], np.uint16)

    def _shade(self, rgb: tuple[int, int, int], z: float, col: int, row: int) -> tuple:
        """The colour a surface of paint `rgb` shows from z metres, lit as pixel (row, col)."""
        a = 1.0 - math.exp(-z / self.fog_dist)
        lum = float(self.illum[min(max(row, 0), self.h - 1), min(max(col, 0), self.w - 1)])
        return tuple(
            min(255, int((c * (1 - a) + fc * a) * g * lum))
            for c, fc, g in zip(rgb, FOG_COLOR, self.gain)
        )

    def _rect(
        self,
        frame: np.ndarray,
        x0: float,
        x1: float,
        y0: float,
        y1: float,
        z: float,
        rgb: tuple,
        lit: bool = False,
    ) -> None:
        """Fill a rectangle facing the camera: lateral x0..x1, height y0..y1 (m), z ahead.

        `lit` colours emit light (tail lights), so night and fog do not dim them.
        """
        s = self.f / z
        c0, c1 = math.floor(self.cx + s * x0), math.ceil(self.cx + s * x1)
        r0 = math.floor(self.hy + s * (CAM_HEIGHT - y1))
        r1 = math.ceil(self.hy + s * (CAM_HEIGHT - y0))
        c0, c1, r0, r1 = max(c0, 0), min(c1, self.w), max(r0, 0), min(r1, self.h)
        if c0 >= c1 or r0 >= r1:
            return
        frame[r0:r1, c0:c1] = rgb if lit else self._shade(rgb, z, (c0 + c1) // 2, r1 - 1)

    def _actor(self, frame: np.ndarray, kind: str, rgb: tuple, x: float, z: float) -> None:
        """A road user from behind: body, darker windows or rider, tail lights."""
        wd, ht = SIZES.get(kind, SIZES["car"])
        x0, x1 = x - wd / 2, x + wd / 2
        dark = tuple(int(c * 0.3) for c in rgb)
        if kind == "pedestrian":
            self._rect(frame, x0, x1, 0.0, 0.85, z, (45, 45, 55))  # legs
            self._rect(frame, x0, x1, 0.85, 1.5, z, rgb)
            self._rect(frame, x + -0.12, x + 0.12, 1.5, ht, z, (210, 170, 140))
            return
        self._rect(frame, x0, x1, 0.25 if kind in ("car", "bus") else 0.0, ht, z, rgb)
        if kind in ("car", "bus"):
            self._rect(frame, x0, x1, 0.0, 0.3, z, (25, 25, 28))  # wheels and shadow
            top = ht * (0.55 if kind == "car" else 0.6)
            self._rect(frame, x0 + 0.15 * wd, x1 - 0.15 * wd, top, ht - 0.08 * ht, z, dark)
        elif kind in ("motorcycle", "bicycle"):
            self._rect(frame, x - 0.2, x + 0.2, 0.9, ht, z, (50, 50, 60))  # rider
            self._rect(frame, x - 0.1, x + 0.1, ht - 0.05, ht + 0.25, z, (30, 30, 30))
        elif kind == "truck":
            self._rect(frame, x0 + 0.1, x1 - 0.1, 0.6, 0.7, z, dark)  # bumper line
        if kind in ("car", "bus", "truck", "motorcycle"):
            glow = self.light in ("night", "dusk") or self.weather == "fog"
            red = (255, 50, 40) if glow else (190, 25, 25)
            lamp = max(0.12, 0.15 * wd)
            self._rect(frame, x0, x0 + lamp, 0.55, 0.75, z, red, lit=glow)
            self._rect(frame, x1 - lamp, x1, 0.55, 0.75, z, red, lit=glow)

    def _props(self, dist: float) -> list[tuple[float, str, float, int]]:
        """Roadside props in view: (z, kind, lateral x, instance number) per prop."""
        kind = self.road["props"]
        spacing = {"posts": 20.0, "trees": 13.0, "buildings": 12.0, "parked": 7.0}[kind]
        offset = {"posts": 0.9, "trees": 4.0, "buildings": 7.5, "parked": 1.6}[kind]
        out = []
        for k in range(math.floor((dist + 1.0) / spacing), math.ceil((dist + 90.0) / spacing)):
            z = k * spacing - dist
            if z < 1.0:
                continue
            for side in (-1, 1):
                # Numbered by position and side, so a prop keeps its look while it passes.
                n = ((k * 2 + (side > 0)) * 2654435761 & 0xFFFFFFFF) >> 16
                if kind == "parked" and n % 3 == 0:
                    continue  # an empty bay
                out.append((z, kind, side * (self.edge + offset), n))
        return out

    def _prop(self, frame: np.ndarray, kind: str, x: float, z: float, n: int) -> None:
        """One roadside prop; its instance number `n` varies its size and colour."""
        snow = self.weather == "snow"
        if kind == "posts":
            self._rect(frame, x - 0.08, x + 0.08, 0.0, 0.9, z, (200, 200, 200))
            self._rect(frame, x - 0.25, x + 0.25, 0.6, 0.8, z, (160, 160, 165))
        elif kind == "trees":
            self._rect(frame, x - 0.2, x + 0.2, 0.0, 2.2, z, (90, 60, 35))
            leaves = (200, 205, 210) if snow else (40 + n % 30, 95 + n % 40, 40)
            self._rect(frame, x - 1.6, x + 1.6, 1.8, 5.0 + n % 3, z, leaves)
        elif kind == "buildings":
            tones = [(150, 140, 130), (120, 120, 128), (170, 160, 140), (110, 90, 80)]
            self._rect(frame, x - 5.0, x + 5.0, 0.0, 6.0 + n % 13, z, tones[n % 4])
            self._rect(frame, x - 3.5, x + 3.5, 2.5, 3.5, z, (50, 60, 75))  # shop window
        else:
            palette = [(200, 30, 30), (230, 230, 235), (40, 40, 45), (30, 70, 160), (150, 150, 155)]
            self._actor(frame, "car", palette[n % 5], x, z)

    def footprint(self, i: int) -> list[tuple[int, int, int, int] | None]:
        """Pixel box (col0, col1, row0, row1; ends exclusive, clipped) of each planned road
        user's body at frame i, in `plan.tracks` order; None when out of view.

        Before any shake or swerve shift. A Collision actor covers the bottom-centre pixel
        at the contact frame; a Near-Collision actor never does.
        """
        out: list[tuple[int, int, int, int] | None] = []
        for kind, _, xs, zs in self.tracks:
            z = float(zs[i])
            if not 0.3 < z < 150.0:
                out.append(None)
                continue
            wd, ht = SIZES.get(kind, SIZES["car"])
            s, z = self.f / max(z, 0.4), max(z, 0.4)
            c0 = max(math.floor(self.cx + s * (xs[i] - wd / 2)), 0)
            c1 = min(math.ceil(self.cx + s * (xs[i] + wd / 2)), self.w)
            r0 = max(math.floor(self.hy + s * (CAM_HEIGHT - ht)), 0)
            r1 = min(math.ceil(self.hy + s * CAM_HEIGHT), self.h)
            out.append((c0, c1, r0, r1) if c0 < c1 and r0 < r1 else None)
        return out

    @staticmethod
    def _shifted(src: np.ndarray, dx: int, dy: int, out: np.ndarray) -> np.ndarray:
        """`src` moved by (dx, dy) pixels into `out`, the uncovered border repeating the edge."""
        h, w = src.shape[:2]
        dx, dy = max(-w // 2, min(w // 2, dx)), max(-h // 2, min(h // 2, dy))
        out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = src[
            max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        if dx > 0:
            out[:, :dx] = out[:, dx : dx + 1]
        elif dx < 0:
            out[:, w + dx :] = out[:, w + dx - 1 : w + dx]
        if dy > 0:
            out[:dy] = out[dy : dy + 1]
        elif dy < 0:
            out[h + dy :] = out[h + dy - 1 : h + dy]
        return out

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame of the video in order, as one reused (height, width, 3) uint8 array."""
        frame = np.empty_like(self.bg)
        moved = np.empty_like(self.bg)
        fps = self.plan.fps
        for i in range(self.n):
            t, dist = i / fps, float(self.dist[i])
            np.copyto(frame, self.bg)
            if len(self.m_y):
                on = (self.m_z + dist) % self.m_period < self.m_dash
                frame[self.m_y[on], self.m_x[on]] = self.m_rgb[on]
            # Painter's order, far to near; the last field is a prop's instance number or
            # a road user's colour.
            items: list[tuple[float, str, float, Any]] = list(self._props(dist))
            for kind, rgb, xs, zs in self.tracks:
                if 0.3 < zs[i] < 150.0:
                    items.append((float(zs[i]), kind, float(xs[i]), rgb))
            for z, kind, x, extra in sorted(items, key=lambda it: -it[0]):
                if isinstance(extra, tuple):
                    self._actor(frame, kind, extra, x, max(z, 0.4))
                else:
                    self._prop(frame, kind, x, z, extra)
            self._weather(frame, t)
            dx, dy = self.shift[i], 0.0
            if self.impact is not None and i >= self.impact:
                k = (i - self.impact) / fps
                if k < 0.1:  # the flash of contact: everything halfway to white
                    np.subtract(255, frame, out=frame)
                    frame >>= 1
                    np.subtract(255, frame, out=frame)
                if k < 0.8:  # the shake of the crash, dying away
                    amp = 0.04 * self.w * math.exp(-k * 5)
                    dx += amp * math.sin(k * 47)
                    dy += amp * math.cos(k * 31)
            if round(dx) or round(dy):
                yield self._shifted(frame, round(dx), round(dy), moved)
            else:
                yield frame

    def _weather(self, frame: np.ndarray, t: float) -> None:
        """Rain streaks (slanted, see-through) or snow flakes (drifting dots) at time t."""
        if self.kind is None:
            return
        h, w = self.h, self.w
        y = self.p_y0 + self.p_v * t
        if self.kind == "rain":
            ys = (y[:, None] + self.p_len[None, :]).astype(np.intp) % h
            xs = (self.p_x0[:, None] - 0.25 * (y[:, None] + self.p_len)).astype(np.intp) % w
            under = frame[ys, xs].astype(np.uint16)
            frame[ys, xs] = ((under + self.p_rgb) >> 1).astype(np.uint8)
        else:
            x = self.p_x0 + 0.02 * w * np.sin(self.p_phase + t * 1.7)
            ys = (y[:, None] + self.p_dy).astype(np.intp) % h
            xs = (x[:, None] + self.p_dx).astype(np.intp) % w
            frame[ys, xs] = self.p_rgb.astype(np.uint8)
