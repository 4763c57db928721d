"""Faster drop-in renderers for Gymnasium's CarRacing-v3 (SPEC.md §5); env.make_env(renderer=...)
picks them.

ExactCarRacing draws the same 96x96 states as stock, bit for bit (with the pygame-ce pinned in
requirements.txt), 3-4x faster per step: road and grass polygons are rotated and culled with
NumPy using the arithmetic of pygame's Vector2.rotate_rad (and Box2D's float32 transform for
the car), only polygons reaching the screen are drawn, the font and the score texts are
cached, and the vertical flip of the 1000x800 canvas becomes a flip of its 96x700
horizontally-shrunk copy (smoothscale shrinks X, then Y, row by row: only the Y pass sees
the order of the rows; the indicator panel, rows 700:800, is drawn on its own).

TurboCarRacing (opt-in, ~10x) keeps stock's physics and rewards but samples the state from
a playfield texture drawn once per reset; its pixels differ slightly from stock's (mean
|difference| ~0.1 of 255 on the rows the agent sees). See its docstring.

Reads nothing, writes nothing.
"""
import math

import numpy as np
import pygame
from gymnasium.envs.box2d import car_dynamics as cd
from gymnasium.envs.box2d import car_racing as cr
from gymnasium.envs.box2d.car_racing import CarRacing, FrictionDetector
from pygame import gfxdraw

W, H = cr.WINDOW_W, cr.WINDOW_H
PANEL_Y = H - 5 * (H / 40.0)          # 700: the indicator panel covers window rows 700..799
PANEL_H = H - int(PANEL_Y)            # 100
NEAR = 2.0                            # px: a polygon this far off screen cannot touch a pixel


def _grass_polys():
    """The 400 grass squares of stock `_render_road`, with the same float arithmetic."""
    g = cr.GRASS_DIM
    polys = []
    for x in range(-20, 20, 2):
        for y in range(-20, 20, 2):
            polys.append([(g * x + g, g * y + 0), (g * x + 0, g * y + 0),
                          (g * x + 0, g * y + g), (g * x + g, g * y + g)])
    return np.array(polys, dtype=np.float64)


GRASS = _grass_polys()
FIELD = np.array([[(cr.PLAYFIELD, cr.PLAYFIELD), (cr.PLAYFIELD, -cr.PLAYFIELD),
                   (-cr.PLAYFIELD, -cr.PLAYFIELD), (-cr.PLAYFIELD, cr.PLAYFIELD)]])


class ExactCarRacing(CarRacing):
    """CarRacing whose observations are bit-identical to stock, drawn faster.

    Rendering modes "human" and "rgb_array" draw the full window as stock does (with the fast
    road drawing); the per-step 96x96 state takes a shorter path that gives the same pixels.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._canvas = None        # the 1000x800 surface reused every frame
        self._polys_of = None      # road_poly list the vertex cache was built from
        self._font = None
        self._texts = {}

    # --- geometry ------------------------------------------------------------------------

    def _view(self):
        """(zoom, translation, angle) exactly as stock `_render` computes them."""
        angle = -self.car.hull.angle
        zoom = 0.1 * cr.SCALE * max(1 - self.t, 0) + cr.ZOOM * cr.SCALE * min(self.t, 1)
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        return zoom, (W / 2 + trans[0], H / 4 + trans[1]), angle

    def _vertices(self):
        """(2, 4, N) array of x and y: the playfield, 400 grass squares, the road polygons."""
        if self._polys_of is not self.road_poly or self._n_road != len(self.road_poly):
            road = np.array([[(p[0], p[1]) for p in poly] for poly, _ in self.road_poly],
                            dtype=np.float64).reshape(-1, 4, 2)
            # vertex-major layout: the per-polygon min/max/any below become fast elementwise ops
            self._verts = np.ascontiguousarray(np.concatenate([FIELD, GRASS, road]).transpose(2, 1, 0))
            self._polys_of, self._n_road = self.road_poly, len(self.road_poly)
        return self._verts

    def _screen_coords(self, zoom, trans, angle):
        """Window coordinates of every vertex: Vector2.rotate_rad's c*x - s*y, s*x + c*y."""
        # Rotating (1, 0) returns pygame's own (cos, sin) of the reduced angle, or exact
        # 0/1 values where rotate_rad special-cases multiples of 90 degrees.
        c, s = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)
        x, y = self._vertices()
        return (c * x - s * y) * zoom + trans[0], (s * x + c * y) * zoom + trans[1]

    def _draw_road_fast(self, surf, zoom, trans, angle):
        """Same pixels as stock `_render_road` on a fresh black surface, reusing `surf`."""
        X, Y = self._screen_coords(zoom, trans, angle)
        if self._field_covers_screen(X[:, 0], Y[:, 0], zoom, trans, angle):
            surf.fill(self.bg_color)  # stock's filled field polygon covers every pixel
        else:
            surf.fill((0, 0, 0))
            field = list(zip(X[:, 0].tolist(), Y[:, 0].tolist()))
            gfxdraw.aapolygon(surf, field, self.bg_color)
            gfxdraw.filled_polygon(surf, field, self.bg_color)
        m = cr.MAX_SHAPE_DIM
        # stock's culling test (any vertex in a box MAX_SHAPE_DIM larger than the window) ...
        stock = ((X >= -m) & (X <= W + m) & (Y >= -m) & (Y <= H + m)).any(axis=0)
        # ... and ours: polygons wholly off screen leave no pixel, skip them too.
        near = ((X.max(axis=0) >= -NEAR) & (X.min(axis=0) <= W + NEAR)
                & (Y.max(axis=0) >= -NEAR) & (Y.min(axis=0) <= H + NEAR))
        mask = stock & near
        mask[0] = False
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        pts = np.stack([X[:, idx], Y[:, idx]], axis=-1).transpose(1, 0, 2).tolist()
        n_grass = 1 + len(GRASS)
        for i, poly in zip(idx.tolist(), pts):
            if i < n_grass:
                color = self.grass_color
            else:
                color = [int(c) for c in self.road_poly[i - n_grass][1]]
            gfxdraw.aapolygon(surf, poly, color)
            gfxdraw.filled_polygon(surf, poly, color)

    @staticmethod
    def _field_covers_screen(fx, fy, zoom, trans, angle):
        """True if the playfield polygon covers the whole window with margin (so a fill
        gives stock's pixels) and its corners are far inside pygame's 16-bit range."""
        if zoom <= 0 or np.abs(fx).max() > 30000 or np.abs(fy).max() > 30000:
            return False
        c, s = math.cos(angle), math.sin(angle)
        lim = cr.PLAYFIELD - 4.0 / zoom
        for u, v in ((0, 0), (W, 0), (0, H), (W, H)):
            dx, dy = (u - trans[0]) / zoom, (v - trans[1]) / zoom
            wx, wy = c * dx + s * dy, -s * dx + c * dy   # rotate back by -angle
            if abs(wx) > lim or abs(wy) > lim:
                return False
        return True

    def _car_polygons(self, zoom, trans, angle):
        """Window points (M, 2) and [(count, color)] of stock `Car.draw` without particles,
        vectorised: Box2D's float32 transform (c*x - s*y) + p, then pygame's double
        rotation, zoom and translation, giving stock's coordinates bit for bit."""
        car = self.car
        if getattr(self, "_car_of", None) is not car:
            parts = []  # per body: float32 vertices of each fixture, color
            for obj in car.drawlist:
                verts = [np.array([tuple(v) for v in f.shape.vertices], np.float32) for f in obj.fixtures]
                parts.append((obj, verts, [int(c * 255) for c in obj.color]))
            self._car_parts, self._car_of = parts, car
        polys, colors, qs_, qc_, px_, py_ = [], [], [], [], [], []
        for obj, verts, color in self._car_parts:  # stock's drawing order
            t = obj.transform
            q, p = t.q, t.position
            shapes = list(verts)
            if "phase" in obj.__dict__:
                stripe = self._wheel_stripe(obj.phase)
                if stripe is not None:
                    shapes.append(stripe)
            for k, v in enumerate(shapes):
                polys.append(v)
                colors.append((len(v), color if k < len(verts) else cd.WHEEL_WHITE))
                n = len(v)
                qc_ += [q.c] * n
                qs_ += [q.s] * n
                px_ += [p[0]] * n
                py_ += [p[1]] * n
        v = np.concatenate(polys)
        qc, qs = np.array(qc_, np.float32), np.array(qs_, np.float32)
        x = ((qc * v[:, 0] - qs * v[:, 1]) + np.array(px_, np.float32)).astype(np.float64)
        y = ((qs * v[:, 0] + qc * v[:, 1]) + np.array(py_, np.float32)).astype(np.float64)
        c, s = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)
        return np.stack([(c * x - s * y) * zoom + trans[0], (s * x + c * y) * zoom + trans[1]], axis=-1), colors

    def _draw_car_exact(self, surf, zoom, trans, angle):
        pts, colors = self._car_polygons(zoom, trans, angle)
        pts = pts.tolist()
        start = 0
        for n, color in colors:
            pygame.draw.polygon(surf, color=color, points=pts[start:start + n])
            start += n

    @staticmethod
    def _wheel_stripe(phase):
        """Float32 vertices of the white stripe stock draws on a wheel, or None."""
        a1, a2 = phase, phase + 1.2
        s1, s2, c1, c2 = math.sin(a1), math.sin(a2), math.cos(a1), math.cos(a2)
        if s1 > 0 and s2 > 0:
            return None
        if s1 > 0:
            c1 = np.sign(c1)
        if s2 > 0:
            c2 = np.sign(c2)
        ww, wr, size = cd.WHEEL_W, cd.WHEEL_R, cd.SIZE
        return np.array([(-ww * size, +wr * c1 * size), (+ww * size, +wr * c1 * size),
                         (+ww * size, +wr * c2 * size), (-ww * size, +wr * c2 * size)], np.float32)

    # --- indicators and score --------------------------------------------------------------

    def _indicator_polys(self):
        """[(points, color)] of stock `_render_indicators` (the black panel excluded)."""
        s, h = W / 40.0, H / 40.0

        def vertical_ind(place, val):
            return [(place * s, H - (h + h * val)), ((place + 1) * s, H - (h + h * val)),
                    ((place + 1) * s, H - h), ((place + 0) * s, H - h)]

        def horiz_ind(place, val):
            return [((place + 0) * s, H - 4 * h), ((place + val) * s, H - 4 * h),
                    ((place + val) * s, H - 2 * h), ((place + 0) * s, H - 2 * h)]

        car = self.car
        v = car.hull.linearVelocity
        true_speed = np.sqrt(np.square(v[0]) + np.square(v[1]))
        w = car.wheels
        items = [(true_speed, vertical_ind(5, 0.02 * true_speed), (255, 255, 255)),
                 (w[0].omega, vertical_ind(7, 0.01 * w[0].omega), (0, 0, 255)),
                 (w[1].omega, vertical_ind(8, 0.01 * w[1].omega), (0, 0, 255)),
                 (w[2].omega, vertical_ind(9, 0.01 * w[2].omega), (51, 0, 255)),
                 (w[3].omega, vertical_ind(10, 0.01 * w[3].omega), (51, 0, 255)),
                 (w[0].joint.angle, horiz_ind(20, -10.0 * w[0].joint.angle), (0, 255, 0)),
                 (car.hull.angularVelocity, horiz_ind(30, -0.8 * car.hull.angularVelocity),
                  (255, 0, 0))]
        return [(pts, color) for value, pts, color in items if abs(value) > 1e-4]

    def _score_text(self):
        """(surface, rect) of the score, as stock renders it, cached per string."""
        if not pygame.font.get_init():  # someone called pygame.quit(): fonts are invalid
            pygame.font.init()
            self._font, self._texts = None, {}
        key = f"{self.reward:04.0f}"
        hit = self._texts.get(key)
        if hit is None:
            if self._font is None:
                self._font = pygame.font.Font(pygame.font.get_default_font(), 42)
            text = self._font.render(key, True, (255, 255, 255), (0, 0, 0))
            rect = text.get_rect()
            rect.center = (60, H - H * 2.5 / 40.0)
            if len(self._texts) > 2000:
                self._texts.clear()
            hit = self._texts[key] = (text, rect)
        return hit

    def _draw_panel(self):
        """The 1000x100 indicator panel (window rows 700..799) as its own surface, or None
        when an indicator reaches above the panel (then only the full path is exact)."""
        polys = self._indicator_polys()
        if any(y < PANEL_Y for pts, _ in polys for _, y in pts):
            return None
        if getattr(self, "_panel", None) is None:
            self._panel = pygame.Surface((W, PANEL_H))
        panel = self._panel
        panel.fill((0, 0, 0))  # stock's black polygon covers rows 700..799 entirely
        for pts, color in polys:
            # y - 700 is exact for y in [700, 800], and pygame's fill is shift-invariant
            pygame.draw.polygon(panel, color=color, points=[(x, y - PANEL_Y) for x, y in pts])
        text, rect = self._score_text()
        panel.blit(text, (rect.x, rect.y - int(PANEL_Y)))
        return panel

    # --- frames ------------------------------------------------------------------------------

    def _begin(self):
        """Stock `_render`'s set-up; False before reset()."""
        pygame.font.init()
        if self.clock is None:
            self.clock = pygame.time.Clock()
        return "t" in self.__dict__

    def _draw_world(self, particles):
        """Road and car on the (unflipped) reused canvas."""
        if self._canvas is None:
            self._canvas = pygame.Surface((W, H))
        zoom, trans, angle = self._view()
        self._draw_road_fast(self._canvas, zoom, trans, angle)
        if particles:
            self.car.draw(self._canvas, zoom, trans, angle, True)
        else:
            self._draw_car_exact(self._canvas, zoom, trans, angle)
        return self._canvas

    def _state_exact(self):
        canvas = self._draw_world(False)
        self.surf = canvas
        panel = self._draw_panel()
        if panel is None:
            return self._finish_window("state_pixels", canvas)
        road = pygame.transform.smoothscale(canvas.subsurface((0, PANEL_H, W, H - PANEL_H)),
                                            (cr.STATE_W, H - PANEL_H))
        if getattr(self, "_column", None) is None:
            self._column = pygame.Surface((cr.STATE_W, H))
        col = self._column
        dst, src = pygame.surfarray.pixels2d(col), pygame.surfarray.pixels2d(road)
        dst[:, :H - PANEL_H] = src[:, ::-1]   # the vertical flip, on 96 columns only
        del dst, src                          # unlock the surfaces
        col.blit(pygame.transform.smoothscale(panel, (cr.STATE_W, PANEL_H)), (0, H - PANEL_H))
        small = pygame.transform.smoothscale(col, (cr.STATE_W, cr.STATE_H))
        return np.ascontiguousarray(pygame.surfarray.pixels3d(small).transpose(1, 0, 2))

    def _finish_window(self, mode, canvas):
        """Stock's tail of `_render`: flip, indicators, score, then show or return."""
        self.surf = pygame.transform.flip(canvas, False, True)
        self._render_indicators(W, H)
        text, rect = self._score_text()
        self.surf.blit(text, rect)
        if mode == "human":
            pygame.event.pump()
            self.clock.tick(self.metadata["render_fps"])
            self.screen.fill(0)
            self.screen.blit(self.surf, (0, 0))
            pygame.display.flip()
        elif mode == "rgb_array":
            return self._create_image_array(self.surf, (cr.VIDEO_W, cr.VIDEO_H))
        elif mode == "state_pixels":
            return self._create_image_array(self.surf, (cr.STATE_W, cr.STATE_H))
        else:
            return self.isopen

    def _render(self, mode):
        assert mode in self.metadata["render_modes"]
        if self.screen is None and mode == "human":
            pygame.display.init()
            self.screen = pygame.display.set_mode((W, H))
        if not self._begin():
            return None
        if mode == "state_pixels":
            return self._state_pixels()
        return self._finish_window(mode, self._draw_world(particles=True))

    def _state_pixels(self):
        return self._state_exact()


class _TileRecorder(FrictionDetector):
    """Stock's contact listener that also notes the road tiles touched (their colour may
    change), so that TurboCarRacing redraws them in its texture."""

    def _contact(self, contact, begin):
        super()._contact(contact, begin)
        for u in (contact.fixtureA.body.userData, contact.fixtureB.body.userData):
            if u and "road_friction" in u.__dict__ and u.idx not in self.env._settled:
                self.env._touched.add(u.idx)


RGBX = (0xFF, 0xFF00, 0xFF0000, 0)  # surface masks putting bytes R, G, B, X in memory order


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

    def _blend_car(self, out, zoom, trans, angle):
        """Blend the car on: from cached sprites once the zoom is final (the hull then sits
        still in the view and the wheels only turn and roll), else drawn and box-shrunk."""
        bx, by, bw, bh = self.CAR_BOX
        i0, j0 = by * cr.STATE_H // H, bx * cr.STATE_W // W
        view = out[i0:i0 + bh * cr.STATE_H // H, j0:j0 + bw * cr.STATE_W // W]
        if zoom == cr.ZOOM * cr.SCALE:
            car = self._sprite(("hull",))[1].copy()
            for k in range(4):  # the wheel sprites hold only what the hull leaves visible
                (r0, r1, c0, c1), rgba = self._sprite(self._wheel_key(k))
                car[r0:r1, c0:c1] += rgba
        else:
            pts, colors = self._car_polygons(zoom, trans, angle)
            pts[:, 1] = H - pts[:, 1]                 # window rows after the flip
            car = self._patch_rgba(pts, colors)
        view[:] = np.minimum(car[..., :3] + view * (1 - car[..., 3:]) + 0.5, 255)

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
