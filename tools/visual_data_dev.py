"""The development half of the visual-data set (DejaVu and WenQuanYi Micro Hei fonts; Debian
`fonts-dejavu-core`, `fonts-wqy-microhei`). Run: python3 -m tools.visual_data_dev OUT_DIR"""
import sys

from tools.visual_data_render import render

DEJAVU = "/usr/share/fonts/truetype/dejavu/"
FONTS = {
    "en": {"sans": DEJAVU + "DejaVuSans.ttf", "mono": DEJAVU + "DejaVuSansMono.ttf"},
    "de": {"sans": DEJAVU + "DejaVuSerif.ttf", "mono": DEJAVU + "DejaVuSansMono.ttf"},
    "zh": {"sans": "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "mono": DEJAVU + "DejaVuSansMono.ttf"},
}
WORDS = {
    "en": {"shop": "CORNER CAFE", "items": ["Espresso", "Croissant", "Bagel", "Tea", "Muffin"], "total": "TOTAL",
           "q_total": "What is the total on this receipt? Answer with the number only.",
           "names": ["Alice", "Bob", "Carol", "David", "Erin"], "table_title": "Scores",
           "q_table": "What is the score of {}? Answer with the number only.",
           "functions": ["sum_items", "add_prices", "count_total"], "q_code": "What is the name of the function? Answer with the name only.",
           "chart_titles": ["Monthly Sales", "Visitors per Month"], "months": ["Jan", "Feb", "Mar", "Apr", "May"],
           "q_chart": "What is the title of the chart? Answer with the title only.",
           "slide_titles": ["Quarterly Review", "Project Roadmap"], "bullets": ["Revenue grew", "New hires", "Costs fell", "Launch in May"],
           "q_slide": "What is the title of the slide? Answer with the title only."},
    "de": {"shop": "BÄCKEREI MÜLLER", "items": ["Brezel", "Brötchen", "Kuchen", "Kaffee", "Tee"], "total": "SUMME",
           "q_total": "What is the total (Summe) on this receipt? Answer with the number only.",
           "names": ["Anna", "Jonas", "Lena", "Paul", "Marie"], "table_title": "Punkte",
           "q_table": "What is the value (Punkte) for {}? Answer with the number only.",
           "functions": ["summe_berechnen", "preise_addieren"], "q_code": "What is the name of the function? Answer with the name only.",
           "chart_titles": ["Umsatz pro Monat", "Besucher im Jahr"], "months": ["Jan", "Feb", "März", "Apr", "Mai"],
           "q_chart": "What is the title of the chart? Answer with the title only.",
           "slide_titles": ["Jahresbericht", "Unsere Ziele"], "bullets": ["Mehr Kunden", "Neue Produkte", "Weniger Kosten", "Start im Mai"],
           "q_slide": "What is the title of the slide? Answer with the title only."},
    "zh": {"shop": "幸福咖啡店", "items": ["咖啡", "蛋糕", "面包", "绿茶", "果汁"], "total": "合计",
           "q_total": "What is the total (合计) on this receipt? Answer with the number only.",
           "names": ["张伟", "李娜", "王芳", "刘洋", "陈静"], "table_title": "成绩",
           "q_table": "What is the value for {}? Answer with the number only.",
           "functions": ["sum_items", "add_prices"], "q_code": "What is the name of the function? Answer with the name only.",
           "chart_titles": ["月度销售额", "访客人数"], "months": ["一月", "二月", "三月", "四月", "五月"],
           "q_chart": "What is the title of the chart? Answer with the title only.",
           "slide_titles": ["季度总结", "项目计划"], "bullets": ["收入增长", "新员工", "成本下降", "五月发布"],
           "q_slide": "What is the title of the slide? Answer with the title only."},
}

if __name__ == "__main__":
    render(sys.argv[1], FONTS, WORDS, per_kind=2, seed=1)
