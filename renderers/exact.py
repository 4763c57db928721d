"""Faster drop-in renderers for Gymnasium's CarRacing-v3; env.make_env(renderer=...)
picks them.

ExactCarRacing draws the same 96x96 states as stock, bit for bit (with the pygame-ce pinned in
requirements.txt), 3-4x faster per step: road and grass polygons are rotated and culled with
NumPy using the arithmetic of pygame's Vector2.rotate_rad (and Box2D's float32 transform for
the car), only polygons reaching the screen are drawn, the font and the score texts are
cached, and the vertical flip of the 1000x800 canvas becomes a flip of its 96x700
horizontally-shrunk copy (smoothscale shrinks X, then Y, row by row: only the Y pass sees
the order of the rows; the indicator panel, rows 700:800, is drawn on its own).

TurboCarRacing (opt-in, ~10x, in renderers/turbo.py) builds on it.

Reads nothing, writes nothing.
"""
import math

import numpy as np
import pygame
from gymnasium.envs.box2d import car_dynamics as cd
from gymnasium.envs.box2d import car_racing as cr
from gymnasium.envs.box2d.car_racing import CarRacing
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
