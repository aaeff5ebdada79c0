"""OpenGL glue: hand Panda3D's context to the runtime and copy eye images.

The runtime must render-share with the application's OpenGL context, so the
session is created with an ``XrGraphicsBindingOpenGL*KHR`` describing the
context Panda3D made current:

* Linux/X11 (Panda3D's ``pandagl`` display, GLX): display, drawable and context
  from ``glXGetCurrentDisplay/Drawable/Context`` (as pyopenxr's examples do),
  plus the context's FBConfig and visual for runtimes that want them.
  Panda3D's ``p3headlessgl`` (EGL) has no GLX context: real runtimes cannot
  bind to it (use ``pandagl`` under X11 or Xvfb); the fake runtime can.
* Windows (``pandagl``, WGL): ``wglGetCurrentDC/Context``.

Eye images are copied from Panda3D's eye textures into the swapchain's
textures with ``glCopyImageSubData`` (a raw, state-free GPU copy; both are
32-bit RGBA formats, so ``GL_RGBA8`` -> ``GL_SRGB8_ALPHA8`` copies the bytes
unchanged: Panda3D writes display-ready values and the compositor decodes
them as sRGB, exactly as the desktop shows them). When the formats are not
copy-compatible, :func:`blit_texture` converts through two framebuffer
objects and restores Panda3D's framebuffer bindings afterwards.

PyOpenGL is imported lazily (pyopenxr depends on it).
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from vrbalance.xr.errors import XrError

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

_GLX_FBCONFIG_ID = 0x8013
_GLX_VISUAL_ID = 0x800B
_GLX_SCREEN = 0x800C


class HeadlessBinding:
    """No graphics binding (``next`` = NULL): for fake runtimes and headless sessions."""

    def session_binding(self, api: Any) -> None:
        return None


class CurrentContextBinding:
    """The binding for the OpenGL context current on this thread (GLX or WGL).

    Call :meth:`session_binding` while Panda3D's GSG context is current (right
    after ``graphics_engine.render_frame()`` on the main thread in Panda3D's
    default single-threaded pipeline).
    """

    def session_binding(self, api: Any) -> ctypes.Structure:
        if sys.platform == "win32":
            return _wgl_binding(api)
        return _glx_binding(api)


def _glx_binding(api: Any) -> ctypes.Structure:
    from OpenGL import GLX

    display = GLX.glXGetCurrentDisplay()
    context = GLX.glXGetCurrentContext()
    drawable = GLX.glXGetCurrentDrawable()
    if not display or not context:
        raise XrError(
            "no GLX OpenGL context is current: the headset needs Panda3D's 'pandagl' display "
            "on X11 (set 'load-display pandagl'; under no monitor run inside Xvfb); "
            "Panda3D's headless EGL display (p3headlessgl) cannot be shared with a runtime"
        )
    fbconfig = None
    visualid = 0
    try:
        fbconfig, visualid = _glx_fbconfig(GLX, display, context)
    except (AttributeError, ctypes.ArgumentError, OSError) as exc:  # optional detail
        log.debug("GLX FBConfig query failed (%s); runtimes mostly do not need it", exc)
    return api.GraphicsBindingOpenGLXlibKHR(
        x_display=display,
        visualid=visualid,
        glx_fbconfig=fbconfig,
        glx_drawable=drawable,
        glx_context=context,
    )


def _glx_fbconfig(glx: Any, display: Any, context: Any) -> tuple[Any, int]:
    value = ctypes.c_int(0)
    glx.glXQueryContext(display, context, _GLX_FBCONFIG_ID, value)
    screen = ctypes.c_int(0)
    glx.glXQueryContext(display, context, _GLX_SCREEN, screen)
    attribs = (ctypes.c_int * 3)(_GLX_FBCONFIG_ID, value.value, 0)
    count = ctypes.c_int(0)
    configs = glx.glXChooseFBConfig(display, screen.value, attribs, count)
    if not configs or count.value < 1:
        return None, 0
    fbconfig = configs[0]
    visual = ctypes.c_int(0)
    glx.glXGetFBConfigAttrib(display, fbconfig, _GLX_VISUAL_ID, visual)
    return fbconfig, int(visual.value)


def _wgl_binding(api: Any) -> ctypes.Structure:
    from OpenGL import WGL

    hdc = WGL.wglGetCurrentDC()
    hglrc = WGL.wglGetCurrentContext()
    if not hdc or not hglrc:
        raise XrError("no WGL OpenGL context is current: create the Panda3D window first")
    return api.GraphicsBindingOpenGLWin32KHR(h_dc=hdc, h_glrc=hglrc)


class TextureCopier:
    """Copies an eye texture into a swapchain texture on the current context.

    Parameters
    ----------
    compatible : bool
        True when source and destination formats are copy-compatible (same
        texel size, e.g. ``GL_RGBA8`` and ``GL_SRGB8_ALPHA8``): use
        ``glCopyImageSubData``. Otherwise blit through framebuffers.
    """

    def __init__(self, *, compatible: bool = True) -> None:
        from OpenGL import GL

        self._gl = GL
        self.compatible = compatible
        self._fbos: tuple[int, int] | None = None

    def copy(self, src_texture: int, dst_texture: int, width: int, height: int) -> None:
        """Copy ``width`` x ``height`` texels of level 0 (both GL_TEXTURE_2D)."""
        gl = self._gl
        if self.compatible:
            gl.glCopyImageSubData(
                src_texture,
                gl.GL_TEXTURE_2D,
                0,
                0,
                0,
                0,
                dst_texture,
                gl.GL_TEXTURE_2D,
                0,
                0,
                0,
                0,
                width,
                height,
                1,
            )
        else:
            self._blit(src_texture, dst_texture, width, height)

    def _blit(self, src: int, dst: int, width: int, height: int) -> None:
        gl = self._gl
        if self._fbos is None:
            read, draw = gl.glGenFramebuffers(2)
            self._fbos = (int(read), int(draw))
        read_fbo, draw_fbo = self._fbos
        prev_read = int(gl.glGetIntegerv(gl.GL_READ_FRAMEBUFFER_BINDING))
        prev_draw = int(gl.glGetIntegerv(gl.GL_DRAW_FRAMEBUFFER_BINDING))
        srgb_was_on = bool(gl.glIsEnabled(gl.GL_FRAMEBUFFER_SRGB))
        try:
            if srgb_was_on:
                gl.glDisable(gl.GL_FRAMEBUFFER_SRGB)  # copy values, do not re-encode
            gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, read_fbo)
            gl.glFramebufferTexture2D(
                gl.GL_READ_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_TEXTURE_2D, src, 0
            )
            gl.glBindFramebuffer(gl.GL_DRAW_FRAMEBUFFER, draw_fbo)
            gl.glFramebufferTexture2D(
                gl.GL_DRAW_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_TEXTURE_2D, dst, 0
            )
            gl.glBlitFramebuffer(
                0, 0, width, height, 0, 0, width, height, gl.GL_COLOR_BUFFER_BIT, gl.GL_NEAREST
            )
        finally:
            gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, prev_read)
            gl.glBindFramebuffer(gl.GL_DRAW_FRAMEBUFFER, prev_draw)
            if srgb_was_on:
                gl.glEnable(gl.GL_FRAMEBUFFER_SRGB)

    def release(self) -> None:
        """Delete the blit framebuffers (context must be current)."""
        if self._fbos is not None:
            self._gl.glDeleteFramebuffers(2, list(self._fbos))
            self._fbos = None


def make_gl_texture(width: int, height: int, internal_format: int) -> int:
    """Create an immutable 2-D texture on the current context (for fake swapchains)."""
    from OpenGL import GL

    previous = int(GL.glGetIntegerv(GL.GL_TEXTURE_BINDING_2D))  # Panda3D caches bindings
    name = int(GL.glGenTextures(1))
    GL.glBindTexture(GL.GL_TEXTURE_2D, name)
    GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, internal_format, width, height)
    GL.glBindTexture(GL.GL_TEXTURE_2D, previous)
    return name


def read_gl_texture(name: int, width: int, height: int) -> bytes:
    """Read back an RGBA8 texture's level 0 (tests: did the copy land?)."""
    from OpenGL import GL

    previous = int(GL.glGetIntegerv(GL.GL_TEXTURE_BINDING_2D))
    GL.glBindTexture(GL.GL_TEXTURE_2D, name)
    try:
        data = GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
    finally:
        GL.glBindTexture(GL.GL_TEXTURE_2D, previous)
    return bytes(data)


__all__ = [
    "CurrentContextBinding",
    "HeadlessBinding",
    "TextureCopier",
    "make_gl_texture",
    "read_gl_texture",
]
