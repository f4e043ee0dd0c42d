import numpy as np
import pytest
from _synth import moving_stack

from napari_flowinpaint import FlowInpainter, repair_slice, repair_stack
from napari_flowinpaint.tasks import find_neighbours, iter_repair_stack

# stack-level logic (neighbours, alpha, one-sided ends) is checked with the deterministic
# optical-flow stage, whose error on these synthetic translations is known to be tiny
INITIAL = FlowInpainter(stages="initial_reference")


def _hole(shape, y=(20, 40), x=(18, 44)):
    m = np.zeros(shape, bool)
    m[y[0]:y[1], x[0]:x[1]] = True
    return m


def test_repair_slice_repairs_and_never_changes_the_stack():
    truth = moving_stack(5, (64, 64))
    stack = truth.copy()
    mask = _hole(stack.shape[1:])
    stack[2][mask] = 255
    before = stack.copy()
    out = repair_slice(stack, 2, mask, inpainter=INITIAL)
    np.testing.assert_array_equal(stack, before)
    err = np.abs(out[mask].astype(float) - truth[2][mask]).mean()
    assert err < 0.02 * np.abs(stack[2][mask].astype(float) - truth[2][mask]).mean()
    np.testing.assert_array_equal(out[~mask], stack[2][~mask])


def test_damaged_neighbour_is_skipped_and_alpha_follows_distance():
    truth = moving_stack(6, (64, 64), step=1.0)
    stack = truth.copy()
    masks = np.zeros(stack.shape, np.uint8)
    masks[2] = 1  # section 2 entirely lost
    stack[2] = 0
    masks[3][_hole(stack.shape[1:])] = 1
    stack[3][masks[3] > 0] = 255
    assert find_neighbours(stack, 3, masks=masks) == (1, 4)
    out, report = repair_slice(stack, 3, masks[3], masks=masks, inpainter=INITIAL,
                               return_report=True)
    assert "previous=1, next=4, alpha=0.667" in report.notes[-1]
    m = masks[3] > 0
    assert np.abs(out[m].astype(float) - truth[3][m]).mean() < 3.0


def test_blank_neighbour_is_unusable():
    stack = moving_stack(5, (32, 32))
    stack[1] = 0
    assert find_neighbours(stack, 2) == (0, 3)


@pytest.mark.parametrize("z", [0, 4])
def test_first_and_last_slices_use_one_side_with_a_warning(z):
    truth = moving_stack(5, (64, 64), step=0.5)
    stack = truth.copy()
    mask = _hole(stack.shape[1:])
    stack[z][mask] = 255
    with pytest.warns(UserWarning, match="one side only"):
        out, report = repair_slice(stack, z, mask, inpainter=INITIAL, return_report=True)
    assert report.neighbours in ("previous only", "next only")
    assert np.abs(out[mask].astype(float) - truth[z][mask]).mean() < 10


def test_repair_stack_progress_stop_and_lazy_inputs():
    da = pytest.importorskip("dask.array")
    truth = moving_stack(6, (48, 48), dtype=np.uint16)
    stack = truth.copy()
    masks = np.zeros(stack.shape, bool)
    for z in (1, 3, 4):
        masks[z, 10:30, 10:30] = True
        stack[z][masks[z]] = 65535
    calls = []
    out = repair_stack(da.from_array(stack, chunks=(1, 48, 48)), masks,
                       progress=lambda i, n: calls.append((i, n)),
                       should_stop=lambda: len(calls) == 2)
    assert calls == [(1, 3), (2, 3)]  # stopped after two, kept both
    assert out[4].max() == 65535 and out[1].max() < 65535 and out[3].max() < 65535
    assert [z for z, _ in iter_repair_stack(stack, masks, inpainter=FlowInpainter())] == [1, 3, 4]


@pytest.mark.parametrize(
    ("stack", "match"),
    [(np.zeros((8, 8), np.uint8), "3-D stack"), (np.zeros((1, 8, 8), np.uint8), "at least 2")],
)
def test_stack_errors(stack, match):
    with pytest.raises(ValueError, match=match):
        repair_slice(stack, 0, np.ones((8, 8), bool))


def test_no_usable_neighbour_is_an_error():
    stack = np.zeros((3, 16, 16), np.uint8)
    with pytest.raises(ValueError, match="no usable neighbour"):
        repair_slice(stack, 1, np.ones((16, 16), bool))
    with pytest.raises(IndexError, match="outside the stack"):
        repair_slice(stack, 5, np.ones((16, 16), bool))
