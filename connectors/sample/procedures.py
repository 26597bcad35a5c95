"""A small catalogue of administrative procedures, as a one-stop desk handles them.

The codes have the national catalogue's shape (`d.dddddd`) and the names, sectors, papers,
fees and time limits are typical of these procedures; which code goes with which name is
illustrative, not the national catalogue's (look procedures up there, with `LayThuTuc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Procedure:
    code: str  # MaTTHC
    name: str
    sector_code: str
    sector_name: str
    department: str  # the office that processes it, before the unit's name
    days: int  # working days from reception to the due date
    fee: int  # đồng, collected at reception; 0 when the procedure is free
    fee_name: str
    papers: tuple[str, ...]  # what the applicant submits
    result: str  # the paper the applicant gets back
    for_enterprises: bool = False
    obligation: float = 0.05  # how often a fee or tax falls due while processing (status 6)
    weight: float = 1.0  # how common it is, relative to the others


CATALOGUE: Final = (
    Procedure(
        "1.000894", "Đăng ký kết hôn", "HT", "Hộ tịch", "Bộ phận Tư pháp - Hộ tịch", 3, 0,
        "Lệ phí đăng ký kết hôn",
        ("Tờ khai đăng ký kết hôn", "Giấy xác nhận tình trạng hôn nhân"),
        "Giấy chứng nhận kết hôn", weight=1.5,
    ),
    Procedure(
        "1.001193", "Đăng ký khai sinh", "HT", "Hộ tịch", "Bộ phận Tư pháp - Hộ tịch", 1, 0,
        "Lệ phí đăng ký khai sinh", ("Tờ khai đăng ký khai sinh", "Giấy chứng sinh"),
        "Giấy khai sinh", weight=3.0,
    ),
    Procedure(
        "2.002492", "Cấp Phiếu lý lịch tư pháp cho công dân Việt Nam", "LLTP",
        "Lý lịch tư pháp", "Sở Tư pháp", 10, 200_000, "Phí cung cấp thông tin lý lịch tư pháp",
        ("Tờ khai yêu cầu cấp Phiếu lý lịch tư pháp", "Bản chụp căn cước"),
        "Phiếu lý lịch tư pháp số 1", weight=1.5,
    ),
    Procedure(
        "1.009994", "Cấp giấy phép xây dựng mới đối với nhà ở riêng lẻ", "XD", "Xây dựng",
        "Phòng Quản lý đô thị", 15, 75_000, "Lệ phí cấp giấy phép xây dựng",
        ("Đơn đề nghị cấp giấy phép xây dựng", "Bản vẽ thiết kế xây dựng",
         "Giấy tờ chứng minh quyền sử dụng đất"),
        "Giấy phép xây dựng", obligation=0.1,
    ),
    Procedure(
        "2.000720", "Đăng ký thành lập hộ kinh doanh", "HKD",
        "Thành lập và hoạt động hộ kinh doanh", "Phòng Kinh tế", 3, 100_000,
        "Lệ phí đăng ký hộ kinh doanh",
        ("Giấy đề nghị đăng ký hộ kinh doanh", "Bản sao căn cước của chủ hộ"),
        "Giấy chứng nhận đăng ký hộ kinh doanh",
    ),
    Procedure(
        "2.001610", "Đăng ký thành lập công ty TNHH một thành viên", "DN",
        "Thành lập và phát triển doanh nghiệp", "Sở Tài chính", 3, 50_000,
        "Lệ phí đăng ký doanh nghiệp", ("Giấy đề nghị đăng ký doanh nghiệp", "Điều lệ công ty"),
        "Giấy chứng nhận đăng ký doanh nghiệp", for_enterprises=True,
    ),
    Procedure(
        "1.004227", "Đăng ký biến động quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
        "DD", "Đất đai", "Văn phòng đăng ký đất đai", 10, 50_000, "Lệ phí cấp giấy chứng nhận",
        ("Đơn đăng ký biến động đất đai", "Giấy chứng nhận đã cấp", "Hợp đồng chuyển nhượng"),
        "Giấy chứng nhận quyền sử dụng đất", obligation=0.5,
    ),
    Procedure(
        "2.000908", "Chứng thực bản sao từ bản chính giấy tờ, văn bản", "CT", "Chứng thực",
        "Bộ phận Tư pháp - Hộ tịch", 1, 2_000, "Phí chứng thực bản sao",
        ("Bản chính giấy tờ cần chứng thực",), "Bản sao được chứng thực", weight=3.0,
    ),
    Procedure(
        "1.002804", "Cấp đổi giấy phép lái xe", "GPLX", "Đường bộ", "Sở Xây dựng", 5, 135_000,
        "Lệ phí cấp giấy phép lái xe",
        ("Đơn đề nghị đổi giấy phép lái xe", "Giấy khám sức khỏe của người lái xe"),
        "Giấy phép lái xe", weight=1.5,
    ),
    Procedure(
        "2.001240", "Cấp giấy phép bán lẻ rượu", "LTHH", "Lưu thông hàng hóa trong nước",
        "Phòng Kinh tế", 10, 1_200_000, "Phí thẩm định cấp giấy phép kinh doanh",
        ("Đơn đề nghị cấp giấy phép bán lẻ rượu", "Bản cam kết bảo đảm an toàn thực phẩm"),
        "Giấy phép bán lẻ rượu", for_enterprises=True, obligation=0.2, weight=0.5,
    ),
)  # fmt: skip
WEIGHTS: Final = tuple(procedure.weight for procedure in CATALOGUE)
