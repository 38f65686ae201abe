import pytest

from golden import differences


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        pytest.param("loss 0.69418, acc 99.88%", "loss 0.69417, acc 99.88%", id="last-digit"),
        pytest.param("1,000 rows", "1,000 rows", id="thousands"),
        pytest.param("p 4.4765780e-05", "p 4.4765777e-05", id="exponent"),
        pytest.param("tensor([-1.0000, 0.7616])", "tensor([-1.0000, 0.7616])", id="tensor"),
    ],
)
def test_round_off_in_the_last_printed_digits_is_accepted(printed, expected):
    assert differences(printed, expected) == []


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        pytest.param("loss 0.69517", "loss 0.69417", id="a-real-change"),
        pytest.param("acc 98.88%", "acc 99.88%", id="accuracy"),
        pytest.param("epoch 201", "epoch 200", id="integer"),
        pytest.param("train loss 0.1", "test loss 0.1", id="words"),
        pytest.param("a\nb", "a", id="extra-line"),
        pytest.param("4.4e-04", "4.4e-05", id="exponent"),
    ],
)
def test_other_differences_are_reported(printed, expected):
    assert differences(printed, expected) != []
