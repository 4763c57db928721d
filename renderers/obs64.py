"""Obs64CarRacing: CarRacing-v3 with stock physics and rewards whose state is the 64x64
observation the agent reads, drawn straight from a prefiltered texture (opt-in:
`--renderer obs64`), 2-3x faster than turbo per step.

Its observations differ slightly from what the exact renderer's 96x96 state gives after the
crop and resize (mean |difference| ~0.25 of 255, 99th percentile 6 on the shipped agent's
episodes: `python -m benchmark --only env`). For rollouts (training C, extracting data); the
window, videos and `env.py` play draw the full frame exactly, and scores are reported with the
exact renderer.

Reads nothing, writes nothing.
"""
import math

import gymnasium
import numpy as np
from gymnasium.envs.box2d import car_racing as cr

import config
from renderers.exact import H, W
from renderers.turbo import TurboCarRacing, blend

F = config.FRAME_SIZE
LANES = 0x0001000100010001          # one in each 16-bit lane of an int64
FINAL_ZOOM = cr.ZOOM * cr.SCALE


def resize_matrix(n_in, n_out):
    """(n_out, n_in) weights of Pillow's antialiased bilinear resize along one axis: a
    triangle filter stretched by the downscale, centred on each output pixel."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = int(max(centre - scale + 0.5, 0)), int(min(centre + scale + 0.5, n_in))
        w = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) + 0.5 - centre) / scale))
        m[i, lo:hi] = w / w.sum()
    return m


def to_lanes(rgbx):
    """uint32 RGBX pixels (any shape) -> int64 with R, G, B, X in 16-bit lanes."""
    return np.ascontiguousarray(rgbx).view(np.uint8).reshape(*rgbx.shape, 4).astype(np.uint16).view(np.int64)[..., 0]


TENT = (1, 3, 3, 1)   # centred between mip-0 texels 2j and 2j+1, as the sampler expects


def half_level(m0, rows, cols):
    """Texels [rows] x [cols] (ranges) of the half-resolution level of the RGBX texture m0
    (uint32, n x n): each is the 4x4 tent TENT x TENT of the mip-0 texels around it
    (2j-1 .. 2j+2, edges clamped), as uint32 RGBX. The tent blurs a little more than the
    2x2 box of a mip: with one bilinear sample per pixel it stands in for the resize's
    wider filter (measured: 2x2 box p99 8, this tent p99 5)."""
    n = m0.shape[0]
    iy = np.clip(np.arange(2 * rows.start - 1, 2 * rows.stop + 1), 0, n - 1)
    ix = np.clip(np.arange(2 * cols.start - 1, 2 * cols.stop + 1), 0, n - 1)
    x = to_lanes(m0[iy][:, ix])
    ny, nx = len(rows), len(cols)
    v = sum(t * x[i:i + 2 * ny:2] for i, t in enumerate(TENT))         # 255 * 64 fits a lane
    v = sum(t * v[:, i:i + 2 * nx:2] for i, t in enumerate(TENT))
    v = (v + 32 * LANES) >> 6                                          # / 64, rounded
    return ((v & 0xFF) | ((v >> 8) & 0xFF00) | ((v >> 16) & 0xFF0000)).astype(np.uint32)


class Obs64CarRacing(TurboCarRacing):
    """CarRacing whose state is the agent's 64x64x3 observation (env.CarRacingWrapper passes
    it through), drawn in three steps:

    - the road, grass and field: one bilinear sample per pixel at the pixel's centre from a
      half-resolution copy of turbo's texture, prefiltered with a 4x4 tent (half_level);
    - the car: turbo's cached state-scale sprites, taken to 64x64 with the resize's own
      weights (resize_matrix) and blended on;
    - nothing else: the indicator panel is cropped away before V sees a frame anyway.

    While the view zooms in (the first second, 50 frames) the road comes from turbo's
    box-filtered mip matching the zoom and the car is drawn, as turbo does, then taken to
    64x64; those frames are rougher (mean |difference| ~0.9, 99th percentile ~13).
    Recoloured tiles are redrawn in the level as in turbo's texture. Memory: turbo's plus
    7 MB (the level).
    """

    SUPERSAMPLE = 2          # the road drawn 2x, not 4x: the level's tent filter hides the difference
    EXACT_BELOW_ZOOM = 0.5   # turbo's mips down to the first frame's zoom (0.6): none drawn exactly
    _OX = (np.arange(F) + 0.5) * (W / F)           # observation pixel centres in the window
    _OY = H - (np.arange(F) + 0.5) * (config.CROP_ROWS / F) * (H / cr.STATE_H)  # (before the flip)
    _RY = resize_matrix(config.CROP_ROWS, F).astype(np.float32)
    _RX = resize_matrix(cr.STATE_W, F).astype(np.float32)
    _level_bases = {}      # turbo's grass-only field surface and its level, shared
    _sprites64 = {}        # car part key (as turbo's) -> float32 premultiplied RGB + coverage

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.observation_space = gymnasium.spaces.Box(0, 255, (F, F, 3), dtype=np.uint8)

    # --- the level --------------------------------------------------------------------------

    def _build_texture(self):
        super()._build_texture()
        base = self._tex_base
        n, nl = self._n, self._n // 2
        if self._level_bases.get("surface") is not base:  # once per process (per colours)
            lbase = half_level(pygame_pixels(base, n), range(0, nl), range(0, nl))
            self._level_bases.update(surface=base, level=lbase)
        lbase = self._level_bases["level"]
        if getattr(self, "_level_base", None) is lbase:
            for r, c in self._level_rects:            # put the field back under the old road
                self._level[r, c] = lbase[r, c]
        else:
            self._level, self._level_base = lbase.copy(), lbase
        self._level_rects = []
        for x0, y0, w, h in self._regions:
            self._refresh_level(x0, y0, x0 + w, y0 + h)

    def _refresh_level(self, x0, y0, x1, y1):
        """Recompute the level texels that mip-0 texels [x0, x1) x [y0, y1) reach."""
        nl = self._level.shape[0]
        rows = range(max((y0 - 2) // 2, 0), min((y1 + 1) // 2 + 1, nl))
        cols = range(max((x0 - 2) // 2, 0), min((x1 + 1) // 2 + 1, nl))
        r, c = slice(rows.start, rows.stop), slice(cols.start, cols.stop)
        self._level[r, c] = half_level(self._view_of(0).reshape(self._n, self._n), rows, cols)
        self._level_rects.append((r, c))

    def _update_texture(self):
        boxes = [self._road_box[self._tile_poly[i]] for i in self._touched if i in self._tile_poly]
        super()._update_texture()
        for b in boxes:
            x0, y0 = np.floor(b[:2]).astype(int) - 1
            x1, y1 = np.ceil(b[2:]).astype(int) + 1
            self._refresh_level(int(x0), int(y0), int(x1), int(y1))

    # --- frames -----------------------------------------------------------------------------

    def _state_pixels(self):
        zoom, trans, angle = self._view()
        if self.domain_randomize or zoom < self.EXACT_BELOW_ZOOM:
            from env import process_frame  # env imports this module lazily: no cycle

            return process_frame(self._state_exact())
        if self._tex_of is not self.road_poly:
            self._build_texture()
        elif self._touched:
            self._update_texture()
        if zoom == FINAL_ZOOM:
            obs = self._sample(zoom, trans, angle)
            car = self._car64()
        else:  # the zoom-in of the first second: turbo's mips and car drawing, at 64x64
            obs = self._sample_mip(zoom, trans, angle)
            car = self._to64(self._car_rgba(zoom, trans, angle))
        r, c, _, _ = self._car_block()
        blend(obs[r, c], car)
        return obs

    def _sample(self, zoom, trans, angle):
        """One bilinear sample of the level per observation pixel, in 4-bit fixed point,
        the colours * 256 in 16-bit lanes (as turbo's warp)."""
        tex = self._level
        n = tex.shape[0]
        k = self.RES * 8 / zoom                         # window px -> level texels * 16
        c, s = math.cos(angle), math.sin(angle)
        off = self._half * self.RES * 8 - 8.0           # texel centres sit at +0.5
        Y, X = (self._OY - trans[1]) * k, (self._OX - trans[0]) * k
        a = np.rint(np.stack([Y * s + off, Y * c + off])).astype(np.int32)
        b = np.rint(np.stack([X * c, X * -s])).astype(np.int32)
        tx = (a[0][:, None] + b[0][None, :]).ravel()
        ty = (a[1][:, None] + b[1][None, :]).ravel()
        lo, hi = min(tx[0], tx[F - 1], tx[-F], tx[-1]), max(tx[0], tx[F - 1], tx[-F], tx[-1])
        lo, hi = min(lo, ty[0], ty[F - 1], ty[-F], ty[-1]), max(hi, ty[0], ty[F - 1], ty[-F], ty[-1])
        if lo < 0 or hi > (n - 2) * 16:                 # beyond the texture: black, as stock
            np.clip(tx, 0, (n - 2) * 16, out=tx)
            np.clip(ty, 0, (n - 2) * 16, out=ty)
        return self._bilinear(tex.reshape(-1), n, tx, ty)

    def _bilinear(self, flat, n, tx, ty):
        """The F x F pixels at texel coordinates (tx, ty) * 16 of the n-wide RGBX texture
        `flat`, each the bilinear mean of its 4 texels, in 16-bit lanes."""
        fx, fy = tx & 15, ty & 15
        i = (ty >> 4) * n + (tx >> 4)
        t = to_lanes(flat.take(i + np.array([[0], [1], [n], [n + 1]], np.int32)))  # (corner, pixel)
        gx = 16 - fx
        top = t[0] * gx + t[1] * fx
        bot = t[2] * gx + t[3] * fx
        return rgb_of_lanes((top * (16 - fy) + bot * fy + self.BIAS * LANES) >> 8)

    def _sample_mip(self, zoom, trans, angle):
        """One bilinear sample per pixel from turbo's box-filtered mip matching the zoom."""
        level = min(1 + max(0, int(math.log2(FINAL_ZOOM / zoom))), len(self._mips) - 1)
        tex, n = self._view_of(level), self._mips[level].get_width()
        k = self.RES * 16 * n / self._n / zoom
        c, s = math.cos(angle), math.sin(angle)
        off = self._half * k * zoom - 8.0
        Y, X = (self._OY - trans[1]) * k, (self._OX - trans[0]) * k
        tx = np.rint((Y * s + off)[:, None] + (X * c)[None, :]).astype(np.int32).ravel()
        ty = np.rint((Y * c + off)[:, None] + (X * -s)[None, :]).astype(np.int32).ravel()
        np.clip(tx, 0, (n - 2) * 16, out=tx)
        np.clip(ty, 0, (n - 2) * 16, out=ty)
        return self._bilinear(tex, n, tx, ty)

    def _car64(self):
        """The car at 64x64 once the zoom is final: the sum of the hull's and the wheels'
        sprites (turbo's state-scale sprites taken through the resize's weights, exact for
        premultiplied colour and coverage; cached per sprite)."""
        car = self._sprite64(("hull",)) + self._sprite64(self._wheel_key64(0))
        for k in (1, 2, 3):
            car += self._sprite64(self._wheel_key64(k))
        return car

    def _wheel_key64(self, k):
        """Turbo's sprite key of wheel k (_wheel_key, from _wheel_stripe's rule in plain
        math: that builds a NumPy array, too slow 4 times a frame) made coarser: a 64x64 wheel is about a pixel, where 0.04 rad of steering and a quarter
        of the radius of stripe are sub-pixel, and fewer keys keep the cache small."""
        w = self.car.wheels[k]
        turn = 4 * round((w.angle - self.car.hull.angle) * 25) if k < 2 else 0
        a1, a2 = w.phase, w.phase + 1.2
        s1, s2 = math.sin(a1), math.sin(a2)
        if s1 > 0 and s2 > 0:
            return k, turn, None
        c1 = math.copysign(1.0, math.cos(a1)) if s1 > 0 else math.cos(a1)
        c2 = math.copysign(1.0, math.cos(a2)) if s2 > 0 else math.cos(a2)
        return k, turn, (2 * round(4 * c1), 2 * round(4 * c2))

    @classmethod
    def _car_block(cls):
        """(rows, cols) of the observation the car's state patch reaches, and the resize
        weights from the patch to them."""
        if getattr(cls, "_block", None) is None:
            rows, cols = cls._car_state_box()
            ry, rx = cls._RY[:, rows], cls._RX[:, cols]
            r, c = np.flatnonzero(ry.any(axis=1)), np.flatnonzero(rx.any(axis=1))
            cls._block = (slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1), ry[r], rx[c])
        return cls._block

    def _to64(self, rgba, r0=0, c0=0):
        """State-scale patch rows r0.., cols c0.. of CAR_BOX -> the observation's car block."""
        _, _, ry, rx = self._car_block()
        h, w = rgba.shape[:2]
        t = (ry[:, r0:r0 + h] @ rgba.reshape(h, -1)).reshape(len(ry), w, 4)
        return rx[:, c0:c0 + w] @ t               # (rows, cols, 4)

    def _sprite64(self, key):
        sprite = self._sprites64.get(key)
        if sprite is None:
            (r0, r1, c0, c1), rgba = self._sprite(key)
            if key == ("hull",):
                r0, c0 = 0, 0
            sprite = self._to64(rgba, r0, c0)
            if len(self._sprites64) > 20000:
                self._sprites64.clear()
            self._sprites64[key] = sprite
        return sprite


def rgb_of_lanes(v):
    """int64 lanes holding 0..255 -> (F, F, 3) uint8: a view of their low bytes (no copy:
    not contiguous, as stock's transposed state is not either)."""
    return v.view(np.uint8).reshape(F, F, 8)[..., 0:6:2]


def pygame_pixels(surf, n):
    """A surface's pixels as an (n, n) uint32 array (a copy: the surface stays unlocked)."""
    import pygame

    return pygame.surfarray.array2d(surf).T.copy().reshape(n, n)
