"""The depth-parallax rung of the ladder: `app.media.parallax` behind the renderer interface."""

from __future__ import annotations

from app.phases.render.renderers import RendererDeclined, RenderRequest


class ParallaxRenderer:
    """2.5D camera moves (dolly, truck, arc, crane) over the photo's depth map, on the CPU. Declines a
    clip whose photo has no depth map (phase 1 found no sidecar, embedded depth or depth model)."""

    name = "parallax"
    version = "1"
    is_3d = True
    generative = False

    def render(self, request: RenderRequest) -> None:
        from app.media.parallax import render_parallax

        request.check_cancelled()
        if request.depth is None:
            raise RendererDeclined("no depth map for this photo")
        render_parallax(
            request.rgb,
            request.depth,
            request.plan,
            request.out_path,
            width=request.width,
            height=request.height,
            fps=request.fps,
            duration=request.duration,
            preset=request.preset,
            crf=request.crf,
            progress=request.frame_done,
            cancel=request.cancel,
        )
