"""TurboCarRacing: CarRacing-v3 with stock physics and rewards, its state drawn approximately
from a playfield texture, ~10x faster than stock (opt-in: `--renderer turbo`).

Its pixels differ slightly from stock's (mean |difference| ~0.04 of 255 on the rows the agent
sees, 99th percentile 1): good for training and extraction, while evaluation uses the exact
renderer of renderers/exact.py, which this builds on. See the class docstring.

Reads nothing, writes nothing.
"""
import math

import numpy as np
import pygame
from gymnasium.envs.box2d import car_dynamics as cd
from gymnasium.envs.box2d import car_racing as cr
from gymnasium.envs.box2d.car_racing import FrictionDetector
from pygame import gfxdraw

from renderers.exact import GRASS, H, PANEL_H, PANEL_Y, W, ExactCarRacing


class _TileRecorder(FrictionDetector):
    """Stock's contact listener that also notes the road tiles touched (their colour may
    change), so that TurboCarRacing redraws them in its texture."""

    def _contact(self, contact, begin):
        super()._contact(contact, begin)
        for u in (contact.fixtureA.body.userData, contact.fixtureB.body.userData):
            if u and "road_friction" in u.__dict__ and u.idx not in self.env._settled:
                self.env._touched.add(u.idx)


RGBX = (0xFF, 0xFF00, 0xFF0000, 0)  # surface masks putting bytes R, G, B, X in memory order


def blend(view, car):
    """Premultiplied RGB + coverage `car` over the uint8 pixels `view`, in place."""
    view[:] = np.minimum(car[..., :3] + view * (1 - car[..., 3:]) + 0.5, 255)


class TurboCarRacing(ExactCarRacing):
    """CarRacing with stock physics and rewards whose 96x96 state is drawn approximately.

    At reset the playfield (background, grass squares, road) is drawn once into a texture of
    RES pixels per world unit, the road antialiased by drawing it SUPERSAMPLE times larger
    and box-shrinking it, in colours 2 levels darker (what smoothscale 1000x800 -> 96x96
    does to a flat colour), with 2x mip levels for the zoom-in of the first second. Each
    frame the 84 state rows the agent sees are the mean of two bilinear samples per pixel
    (about the blur of stock's box filter), the car is blended on from cached sprites (drawn
    exactly, then box-shrunk) and the indicator rows are drawn at a quarter of the window's
    resolution. Tiles the car recolours are recoloured in the texture. The first 4 frames
    (stock's fill rules fatten the tiny polygons of the zoomed-out view), "human" /
    "rgb_array" frames and domain_randomize are drawn exactly, as by ExactCarRacing.
    Memory: ~80 MB per env (the texture, its mips, the shared grass-only playfield).
    """

    RES = 3.48            # texture pixels per world unit (GRASS_DIM * RES must be an integer)
    SUPERSAMPLE = 4       # a power of 2: smoothscale then takes exact means
    GRASS_GROW = 0.12     # stock's polygon fill spreads ~0.5 window px past grass and field edges
    SPREAD = 0.2          # the two samples sit +-SPREAD state pixels apart along the row
    BIAS = 255            # rounding of the 8.8 fixed-point colours
    EXACT_BELOW_ZOOM = 2.0  # zoom (window px per world unit) below which frames are exact
    ROWS = 84             # state rows sampled from the texture; rows 84:96 show the indicators
    CAR_BOX = (375, 550, 250, 100)  # window patch (x, y, w, h) holding the car: 24 x 12 state pixels
    _XS = (np.arange(cr.STATE_W) + 0.5) * (W / cr.STATE_W)   # state pixel centres in the
    _YS = H - (np.arange(ROWS) + 0.5) * (H / cr.STATE_H)     # window before the flip
    _bases = {}           # the playfield without road (per RES and colours), shared
    _sprites = {}         # car part key -> (rows, cols) box, float32 premultiplied RGB + coverage

    def reset(self, *, seed=None, options=None):
        self._tex_of, self._touched, self._settled = None, set(), set()
        obs, info = super().reset(seed=seed, options=options)
        rec = _TileRecorder(self, self.lap_complete_percent)
        self.world.contactListener_bug_workaround = rec
        self.world.contactListener = rec
        return obs, info

    # --- the texture -----------------------------------------------------------------------

    def _build_texture(self):
        res, g = self.RES, cr.GRASS_DIM
        self._half = half = g * math.ceil((cr.PLAYFIELD + 45.0) / g)  # the view reaches ~40
        self._n = n = int(round(2 * half * res))
        key = (res, n, self.GRASS_GROW, tuple(self.bg_color), tuple(self.grass_color))
        if key not in self._bases:
            self._bases.clear()
            self._bases[key] = pygame.Surface((n, n), 0, 32, RGBX)
            self._fill_field(self._bases[key], 0, 0, 1)
        base = self._bases[key]
        if getattr(self, "_tex_base", None) is base:  # put the field back under the old road
            self._views = [None] * len(self._views)   # (unlocks the surfaces)
            for rect in self._regions:
                self._tex.blit(base, rect[:2], rect)
        else:
            self._tex, self._tex_base = base.copy(), base
        self._regions = []
        road = (np.array([poly for poly, _ in self.road_poly], np.float64).reshape(-1, 4, 2) + half) * res
        self._road_px = road
        self._road_box = box = np.concatenate([road.min(axis=1), road.max(axis=1)], axis=1)
        for k in range(0, len(road), 16):  # runs of 16 polygons, each with its neighbours
            x0, y0 = np.floor(box[k:k + 16, :2].min(axis=0)).astype(int) - 2
            x1, y1 = np.ceil(box[k:k + 16, 2:].max(axis=0)).astype(int) + 2
            self._render_region(x0, y0, x1 - x0, y1 - y0)
        self._tex_colors = [tuple(int(c) for c in color) for _, color in self.road_poly]
        self._tile_poly = {}  # tile index -> road_poly index (kerb polygons interleave)
        for k, (_, color) in enumerate(self.road_poly):
            i = len(self._tile_poly)
            if i < len(self.road) and color is self.road[i].color:
                self._tile_poly[i] = k
        self._mips = [self._tex]  # halvings down to the zoom below which frames are exact
        while len(self._mips) <= math.log2(cr.ZOOM * cr.SCALE / self.EXACT_BELOW_ZOOM):
            m = self._mips[-1]
            self._mips.append(pygame.transform.smoothscale(m, (m.get_width() // 2, m.get_height() // 2)))
        self._views = [None] * len(self._mips)
        self._tex_of, self._settled = self.road_poly, set()
        self._touched.clear()

    def _view_of(self, level):
        """Row-major uint32 pixels of mip `level` (a view, locking the surface while held)."""
        if self._views[level] is None:
            self._views[level] = pygame.surfarray.pixels2d(self._mips[level]).T.reshape(-1)
        return self._views[level]

    @staticmethod
    def _dark(color):
        return [max(int(c) - 2, 0) for c in color]

    def _fill_field(self, surf, ox, oy, scale):
        """Black, the playfield and the grass squares, texture pixel (ox, oy) at surf's (0, 0)
        and `scale` surf pixels per texture pixel. Grass edges fall on texture pixel edges."""
        res, half = self.RES, self._half
        surf.fill((0, 0, 0))
        f0 = int(round((half - cr.PLAYFIELD) * res))
        side = (self._n - 2 * f0) * scale
        bg, grass = self._dark(self.bg_color), self._dark(self.grass_color)
        rim = [int(round(c * self.GRASS_GROW)) for c in bg]  # (see the grass squares' rim)
        surf.fill(rim, ((f0 - 1 - ox) * scale, (f0 - 1 - oy) * scale, side + 2 * scale, side + 2 * scale))
        surf.fill(bg, ((f0 - ox) * scale, (f0 - oy) * scale, side, side))
        cell = int(round(cr.GRASS_DIM * res))
        gx = np.rint((GRASS[:, 1, 0] + half) * res).astype(int) - ox
        gy = np.rint((GRASS[:, 1, 1] + half) * res).astype(int) - oy
        w, h = surf.get_size()
        near = (gx - 1 <= w / scale) & (gy - 1 <= h / scale) & (gx + cell + 1 >= 0) & (gy + cell + 1 >= 0)
        rim = [int(round(b + (c - b) * self.GRASS_GROW)) for b, c in zip(bg, grass)]
        for x, y in zip(gx[near].tolist(), gy[near].tolist()):  # a rim of partial coverage
            surf.fill(rim, ((x - 1) * scale, (y - 1) * scale, (cell + 2) * scale, (cell + 2) * scale))
            surf.fill(grass, (x * scale, y * scale, cell * scale, cell * scale))

    def _render_region(self, x0, y0, w, h):
        """Redraw texture pixels [x0, x0+w) x [y0, y0+h): the field and every road polygon
        touching them, SUPERSAMPLE times larger, then box-shrunk into the texture."""
        ss, b = self.SUPERSAMPLE, self._road_box
        big = pygame.Surface((w * ss, h * ss), 0, 32, RGBX)
        self._fill_field(big, x0, y0, ss)
        hit = np.flatnonzero((b[:, 0] < x0 + w + 1) & (b[:, 2] > x0 - 1) & (b[:, 1] < y0 + h + 1) & (b[:, 3] > y0 - 1))
        for k, poly in zip(hit.tolist(), ((self._road_px[hit] - (x0, y0)) * ss).tolist()):
            gfxdraw.filled_polygon(big, poly, self._dark(self.road_poly[k][1]))
        self._tex.blit(pygame.transform.smoothscale(big, (w, h)), (x0, y0))
        self._regions.append((x0, y0, w, h))

    def _update_texture(self):
        """Recolour the touched tiles whose colour changed: add the change times the tile's
        coverage of each texture pixel (mip 0 only: the others serve the first second)."""
        ss, n = self.SUPERSAMPLE, self._n
        road = tuple(int(c) for c in self.road_color)
        for i in self._touched:
            k = self._tile_poly.get(i)
            color = None if k is None else tuple(int(c) for c in self.road_poly[k][1])
            if color == road:
                self._settled.add(i)  # a touched tile only ever turns to the road colour
            if color is None or color == self._tex_colors[k]:
                continue
            delta = np.subtract(self._dark(color), self._dark(self._tex_colors[k])).astype(np.int16)
            self._tex_colors[k] = color
            x0, y0 = np.floor(self._road_box[k, :2]).astype(int) - 1
            x1, y1 = np.ceil(self._road_box[k, 2:]).astype(int) + 1
            mask = pygame.Surface(((x1 - x0) * ss, (y1 - y0) * ss), 0, 32, RGBX)
            gfxdraw.filled_polygon(mask, ((self._road_px[k] - (x0, y0)) * ss).tolist(), (255, 255, 255))
            cover = pygame.surfarray.array_red(pygame.transform.smoothscale(mask, (x1 - x0, y1 - y0))).T
            texels = self._view_of(0).reshape(n, n)[y0:y1, x0:x1].view(np.uint8).reshape(y1 - y0, x1 - x0, 4)
            rgb = texels[..., :3] + (cover.astype(np.int16)[..., None] * delta + 127) // 255
            texels[..., :3] = np.clip(rgb, 0, 255)  # the mask is not exactly the tile's share
        self._touched.clear()

    # --- frames ----------------------------------------------------------------------------

    def _state_pixels(self):
        zoom, trans, angle = self._view()
        if self.domain_randomize or zoom < self.EXACT_BELOW_ZOOM:
            return self._state_exact()
        if self._tex_of is not self.road_poly:
            self._build_texture()
        elif self._touched:
            self._update_texture()
        # RGBX rows: a 4-byte copy is much faster than a 3-byte one; the state returned is
        # its RGB view (not contiguous, as stock's transposed array is not either)
        rgbx = np.empty((cr.STATE_H, cr.STATE_W, 4), np.uint8)
        lanes = self._warp(zoom, trans, angle).reshape(self.ROWS, cr.STATE_W)
        np.copyto(rgbx[:self.ROWS], (lanes >> 8).view(np.uint16).reshape(self.ROWS, cr.STATE_W, 4),
                  casting="unsafe")                  # the high byte of each 16-bit lane
        out = rgbx[..., :3]
        self._blend_car(out, zoom, trans, angle)
        out[self.ROWS:] = self._small_panel()
        return out

    def _warp(self, zoom, trans, angle):
        """State rows 0:84: per pixel the mean of two bilinear samples spread along its row
        (state pixels are widest across), from the texture or, zoomed out, a coarser mip
        level. 4-bit fixed point, the colours * 256 in 16-bit lanes of an int64 per pixel."""
        level = min(max(0, int(math.log2(cr.ZOOM * cr.SCALE / zoom))), len(self._mips) - 1)
        tex, n = self._view_of(level), self._mips[level].get_width()
        k = self.RES * 16 * n / self._n / zoom        # window px -> texture px * 16
        c, s = math.cos(angle), math.sin(angle)
        # state pixel centre -> window (x, y) before the flip -> world -> texture * 16, as
        # a[:, row] + b[:, col] for x and y; -8: texel centres sit at +0.5, +0.5: rounding
        off = self._half * k * zoom - 7.5
        Y, X = (self._YS - trans[1]) * k, (self._XS - trans[0]) * k
        a = np.stack([Y * s + off, Y * c + off])
        b = np.stack([X * c, X * -s])
        d = self.SPREAD * (W / cr.STATE_W) * k * np.array([[c], [-s]])
        t = (np.stack([a + d, a - d])[:, :, :, None] + b[:, None, :]).reshape(2, 2, -1).astype(np.int32)
        # the map is affine: its extremes are at the corners of the state
        ends = [(y * s + x * c, y * c - x * s) for y in (Y[0], Y[-1]) for x in (X[0], X[-1])]
        margin = abs(d).max()
        if off + min(min(e) for e in ends) - margin < 0 or off + max(max(e) for e in ends) + margin > (n - 2) * 16:
            np.clip(t, 0, (n - 2) * 16, out=t)       # beyond the texture: black, as stock
        f = t & 15
        t >>= 4
        idx = (t[:, 1] * n + t[:, 0])[:, None] + np.array([[0], [1], [n], [n + 1]], np.int32)
        texels = tex.take(idx)                        # (sample, corner, pixel)
        w = np.stack([16 - f, f], axis=1)             # (sample, 1 - frac | frac, x | y, pixel)
        wts = (w[:, :, None, 1] * w[:, None, :, 0]).reshape(2, 4, -1)   # sum 256
        # weights * 255 never carry out of a lane; halving each lane makes room for the sum
        lanes = texels.view(np.uint8).reshape(2, 4, -1, 4).astype(np.uint16).view(np.int64)
        acc = ((lanes.reshape(2, 4, -1) * wts).sum(axis=1) >> 1) & 0x7FFF7FFF7FFF7FFF
        return acc[0] + acc[1] + self.BIAS * 0x0001000100010001

    def _car_rgba(self, zoom, trans, angle):
        """The car on the CAR_BOX patch at state scale (premultiplied RGB, coverage): from
        cached sprites once the zoom is final (the hull then sits still in the view and the
        wheels only turn and roll), else drawn and box-shrunk."""
        if zoom == cr.ZOOM * cr.SCALE:
            car = self._sprite(("hull",))[1].copy()
            for k in range(4):  # the wheel sprites hold only what the hull leaves visible
                (r0, r1, c0, c1), rgba = self._sprite(self._wheel_key(k))
                car[r0:r1, c0:c1] += rgba
            return car
        pts, colors = self._car_polygons(zoom, trans, angle)
        pts[:, 1] = H - pts[:, 1]                 # window rows after the flip
        return self._patch_rgba(pts, colors)

    @classmethod
    def _car_state_box(cls):
        """(rows, cols) slices of the 96x96 state that CAR_BOX covers."""
        bx, by, bw, bh = cls.CAR_BOX
        i0, j0 = by * cr.STATE_H // H, bx * cr.STATE_W // W
        return slice(i0, i0 + bh * cr.STATE_H // H), slice(j0, j0 + bw * cr.STATE_W // W)

    def _blend_car(self, out, zoom, trans, angle):
        rows, cols = self._car_state_box()
        blend(out[rows, cols], self._car_rgba(zoom, trans, angle))

    def _wheel_key(self, k):
        """Sprite key of wheel k: steering angle (0.01 rad) and white stripe (1/8 radius)."""
        w = self.car.wheels[k]
        stripe = self._wheel_stripe(w.phase)
        band = None if stripe is None else tuple(int(round(y * 8 / (cd.WHEEL_R * cd.SIZE))) for y in stripe[1:3, 1])
        return k, round((w.angle - self.car.hull.angle) * 100) if k < 2 else 0, band

    def _sprite(self, key):
        sprite = self._sprites.get(key)
        if sprite is None:
            hull = [(np.array(f.shape.vertices), [int(c * 255) for c in self.car.hull.color])
                    for f in self.car.hull.fixtures]
            shapes = hull
            if key != ("hull",):
                k, turn, band = key
                wr, ww = cd.WHEEL_R * cd.SIZE, cd.WHEEL_W * cd.SIZE
                # Box2D's vertex order: pygame's fill depends on the orientation
                local = [(np.array(self.car.wheels[k].fixtures[0].shape.vertices), cd.WHEEL_COLOR)]
                if band is not None:
                    y1, y2 = band[0] * wr / 8, band[1] * wr / 8
                    local.append((np.array([(-ww, y1), (ww, y1), (ww, y2), (-ww, y2)]), cd.WHEEL_WHITE))
                c, s = math.cos(turn / 100), math.sin(turn / 100)
                anchor = np.array(cd.WHEELPOS[k]) * cd.SIZE
                shapes = [(v @ ((c, s), (-s, c)) + anchor, col) for v, col in local]
                shapes += [(v, (0, 0, 0, 0)) for v, _ in hull]   # erase what the hull hides
            pts = np.concatenate([v for v, _ in shapes]) * (cr.ZOOM * cr.SCALE) + (W / 2, H / 4)
            pts[:, 1] = H - pts[:, 1]
            rgba = self._patch_rgba(pts, [(len(v), col) for v, col in shapes])
            rows, cols = np.nonzero(rgba[..., 3] > 0)
            box = (0, 0, 0, 0) if not len(rows) else (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
            if len(self._sprites) > 20000:
                self._sprites.clear()
            sprite = (box, rgba if key == ("hull",) else rgba[box[0]:box[1], box[2]:box[3]])
            self._sprites[key] = sprite
        return sprite

    def _patch_rgba(self, pts, colors):
        """Polygons (window points after the flip) drawn on a transparent CAR_BOX patch and
        box-shrunk to state scale: float32 premultiplied RGB and coverage 0..1."""
        bx, by, bw, bh = self.CAR_BOX
        patch = pygame.Surface((bw, bh), pygame.SRCALPHA, 32)
        pts = (pts - (bx, by)).tolist()
        start = 0
        for k, color in colors:
            pygame.draw.polygon(patch, color=color, points=pts[start:start + k])
            start += k
        small = pygame.transform.smoothscale(patch, (bw * cr.STATE_W // W, bh * cr.STATE_H // H))
        rgb = pygame.surfarray.array3d(small).transpose(1, 0, 2).astype(np.float32)
        a = pygame.surfarray.array_alpha(small).T[..., None].astype(np.float32)
        return np.concatenate([rgb, np.minimum(a / 253, 1)], axis=2)  # full coverage reads 253

    def _small_panel(self):
        """State rows 84:96: the indicator panel drawn at a quarter of the window's size."""
        q = 4
        if getattr(self, "_qpanel", None) is None:
            self._qpanel, self._qtexts = pygame.Surface((W // q, PANEL_H // q)), {}
        panel = self._qpanel
        panel.fill((0, 0, 0))
        for pts, color in self._indicator_polys():
            pygame.draw.polygon(panel, color=color, points=[(x / q, (y - PANEL_Y) / q) for x, y in pts])
        text, rect = self._score_text()
        small = self._qtexts.get(id(text))
        if small is None or small[0] is not text:
            rgb = pygame.Surface(text.get_size())
            rgb.blit(text, (0, 0))
            if len(self._qtexts) > 2000:
                self._qtexts.clear()
            small = self._qtexts[id(text)] = (text, pygame.transform.smoothscale(rgb, (rect.w // q, rect.h // q)))
        panel.blit(small[1], (rect.x / q, (rect.y - PANEL_Y) / q))
        rows = pygame.transform.smoothscale(panel, (cr.STATE_W, cr.STATE_H - self.ROWS))
        return pygame.surfarray.pixels3d(rows).transpose(1, 0, 2)
