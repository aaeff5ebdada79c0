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

PyOpenGL (a pyopenxr dependency) is used only for the GLX/WGL queries, lazily;
per-frame GL calls go through ctypes (see :class:`GLFunctions`).
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


# -- OpenGL entry points through ctypes ------------------------------------------------------
#
# PyOpenGL is not used for the per-frame calls: pyopenxr forces PyOpenGL onto its
# GLX platform, which refuses to call GL 4.x functions while an EGL context
# (Panda3D's p3headlessgl) is current, and each PyOpenGL call costs tens of
# microseconds. glvnd's libOpenGL exports every core entry point and dispatches
# to whatever context is current (GLX or EGL); on Windows, functions beyond
# OpenGL 1.1 come from wglGetProcAddress.

GL_TEXTURE_2D = 0x0DE1
GL_TEXTURE_BINDING_2D = 0x8069
GL_RGBA = 0x1908
GL_UNSIGNED_BYTE = 0x1401
GL_READ_FRAMEBUFFER = 0x8CA8
GL_DRAW_FRAMEBUFFER = 0x8CA9
GL_READ_FRAMEBUFFER_BINDING = 0x8CAA
GL_DRAW_FRAMEBUFFER_BINDING = 0x8CA6
GL_COLOR_ATTACHMENT0 = 0x8CE0
GL_COLOR_BUFFER_BIT = 0x00004000
GL_NEAREST = 0x2600
GL_FRAMEBUFFER_SRGB = 0x8DB9

_u, _i, _p = ctypes.c_uint, ctypes.c_int, ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "glCopyImageSubData": (None, (_u, _u, _i, _i, _i, _i, _u, _u, _i, _i, _i, _i, _i, _i, _i)),
    "glGenTextures": (None, (_i, ctypes.POINTER(_u))),
    "glDeleteTextures": (None, (_i, ctypes.POINTER(_u))),
    "glBindTexture": (None, (_u, _u)),
    "glTexStorage2D": (None, (_u, _i, _u, _i, _i)),
    "glGetIntegerv": (None, (_u, ctypes.POINTER(_i))),
    "glGetTexImage": (None, (_u, _i, _u, _u, _p)),
    "glGenFramebuffers": (None, (_i, ctypes.POINTER(_u))),
    "glDeleteFramebuffers": (None, (_i, ctypes.POINTER(_u))),
    "glBindFramebuffer": (None, (_u, _u)),
    "glFramebufferTexture2D": (None, (_u, _u, _u, _u, _i)),
    "glBlitFramebuffer": (None, (_i, _i, _i, _i, _i, _i, _i, _i, _u, _u)),
    "glIsEnabled": (ctypes.c_ubyte, (_u,)),
    "glEnable": (None, (_u,)),
    "glDisable": (None, (_u,)),
    "glFinish": (None, ()),
    "glGetError": (_u, ()),
}


class GLFunctions:
    """The few OpenGL functions the headset layer calls, resolved once."""

    def __init__(self) -> None:
        if sys.platform == "win32":
            lib = ctypes.WinDLL("opengl32")  # type: ignore[attr-defined]
            get_proc = lib.wglGetProcAddress
            get_proc.restype = ctypes.c_void_p
            get_proc.argtypes = [ctypes.c_char_p]
        else:
            try:
                lib = ctypes.CDLL("libOpenGL.so.0")
            except OSError:
                lib = ctypes.CDLL("libGL.so.1")
            get_proc = None
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn: Any = getattr(lib, name, None)
            if fn is None and get_proc is not None:
                address = get_proc(name.encode())
                if address:
                    fn = ctypes.CFUNCTYPE(restype, *argtypes)(address)
            if fn is None:
                raise XrError(f"the OpenGL library lacks {name} (OpenGL 4.3 is needed)")
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def get_integer(self, pname: int) -> int:
        value = ctypes.c_int(0)
        self.glGetIntegerv(pname, ctypes.byref(value))  # type: ignore[attr-defined]
        return int(value.value)


_GL: GLFunctions | None = None


def gl_functions() -> GLFunctions:
    """The process-wide resolved entry points (resolution is pure, so sharing is safe)."""
    global _GL
    if _GL is None:
        _GL = GLFunctions()
    return _GL


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
        self._gl = gl_functions()
        self.compatible = compatible
        self._fbos: Any = None

    def copy(self, src_texture: int, dst_texture: int, width: int, height: int) -> None:
        """Copy ``width`` x ``height`` texels of level 0 (both GL_TEXTURE_2D)."""
        if self.compatible:
            self._gl.glCopyImageSubData(  # type: ignore[attr-defined]
                src_texture, GL_TEXTURE_2D, 0, 0, 0, 0,
                dst_texture, GL_TEXTURE_2D, 0, 0, 0, 0,
                width, height, 1,
            )  # fmt: skip
        else:
            self._blit(src_texture, dst_texture, width, height)

    def _blit(self, src: int, dst: int, width: int, height: int) -> None:
        gl: Any = self._gl
        if self._fbos is None:
            self._fbos = (ctypes.c_uint * 2)()
            gl.glGenFramebuffers(2, self._fbos)
        read_fbo, draw_fbo = self._fbos[0], self._fbos[1]
        # Panda3D caches its framebuffer bindings: put them back afterwards.
        prev_read = self._gl.get_integer(GL_READ_FRAMEBUFFER_BINDING)
        prev_draw = self._gl.get_integer(GL_DRAW_FRAMEBUFFER_BINDING)
        srgb_was_on = bool(gl.glIsEnabled(GL_FRAMEBUFFER_SRGB))
        try:
            if srgb_was_on:
                gl.glDisable(GL_FRAMEBUFFER_SRGB)  # copy values, do not re-encode
            gl.glBindFramebuffer(GL_READ_FRAMEBUFFER, read_fbo)
            gl.glFramebufferTexture2D(
                GL_READ_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, src, 0
            )
            gl.glBindFramebuffer(GL_DRAW_FRAMEBUFFER, draw_fbo)
            gl.glFramebufferTexture2D(
                GL_DRAW_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, dst, 0
            )
            gl.glBlitFramebuffer(
                0, 0, width, height, 0, 0, width, height, GL_COLOR_BUFFER_BIT, GL_NEAREST
            )
        finally:
            gl.glBindFramebuffer(GL_READ_FRAMEBUFFER, prev_read)
            gl.glBindFramebuffer(GL_DRAW_FRAMEBUFFER, prev_draw)
            if srgb_was_on:
                gl.glEnable(GL_FRAMEBUFFER_SRGB)

    def release(self) -> None:
        """Delete the blit framebuffers (context must be current)."""
        if self._fbos is not None:
            self._gl.glDeleteFramebuffers(2, self._fbos)  # type: ignore[attr-defined]
            self._fbos = None


def make_gl_texture(width: int, height: int, internal_format: int) -> int:
    """Create an immutable 2-D texture on the current context (for fake swapchains)."""
    gl: Any = gl_functions()
    previous = gl.get_integer(GL_TEXTURE_BINDING_2D)  # Panda3D caches bindings
    name = ctypes.c_uint(0)
    gl.glGenTextures(1, ctypes.byref(name))
    gl.glBindTexture(GL_TEXTURE_2D, name.value)
    gl.glTexStorage2D(GL_TEXTURE_2D, 1, internal_format, width, height)
    gl.glBindTexture(GL_TEXTURE_2D, previous)
    return int(name.value)


def read_gl_texture(name: int, width: int, height: int) -> bytes:
    """Read back an RGBA8 texture's level 0, bottom row first (tests: did the copy land?)."""
    gl: Any = gl_functions()
    previous = gl.get_integer(GL_TEXTURE_BINDING_2D)
    data = ctypes.create_string_buffer(width * height * 4)
    gl.glBindTexture(GL_TEXTURE_2D, name)
    try:
        gl.glGetTexImage(GL_TEXTURE_2D, 0, GL_RGBA, GL_UNSIGNED_BYTE, data)
    finally:
        gl.glBindTexture(GL_TEXTURE_2D, previous)
    return data.raw


__all__ = [
    "CurrentContextBinding",
    "GLFunctions",
    "HeadlessBinding",
    "TextureCopier",
    "gl_functions",
    "make_gl_texture",
    "read_gl_texture",
]
