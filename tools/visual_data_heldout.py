"""The held-out half of the visual-data set, made by its own script before anything was tuned:
other fonts (Liberation; WenQuanYi Zen Hei — Debian `fonts-liberation`, `fonts-wqy-zenhei`),
other words and values. Run: python3 -m tools.visual_data_heldout OUT_DIR"""
import sys

from tools.visual_data_render import render

LIB = "/usr/share/fonts/truetype/liberation/"
FONTS = {
    "en": {"sans": LIB + "LiberationSans-Regular.ttf", "mono": LIB + "LiberationMono-Regular.ttf"},
    "de": {"sans": LIB + "LiberationSerif-Regular.ttf", "mono": LIB + "LiberationMono-Regular.ttf"},
    "zh": {"sans": "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "mono": LIB + "LiberationMono-Regular.ttf"},
}
WORDS = {
    "en": {"shop": "GREEN GROCER", "items": ["Apples", "Bread", "Cheese", "Milk", "Eggs"], "total": "AMOUNT DUE",
           "q_total": "What is the amount due? Answer with the number only.",
           "names": ["Oscar", "Grace", "Henry", "Iris", "Jack"], "table_title": "Points",
           "q_table": "How many points does {} have? Answer with the number only.",
           "functions": ["merge_lists", "compute_mean", "parse_line"], "q_code": "Which function is defined here? Answer with its name only.",
           "chart_titles": ["Rainfall by Month", "Weekly Downloads"], "months": ["Jun", "Jul", "Aug", "Sep", "Oct"],
           "q_chart": "What does the chart's title say? Answer with the title only.",
           "slide_titles": ["Annual Summary", "Team Goals"], "bullets": ["Hire engineers", "Cut waste", "Ship v2", "Grow sales"],
           "q_slide": "What is this slide's heading? Answer with the heading only."},
    "de": {"shop": "METZGEREI SCHULZ", "items": ["Wurst", "Schinken", "Käse", "Butter", "Milch"], "total": "GESAMT",
           "q_total": "What is the total (Gesamt)? Answer with the number only.",
           "names": ["Sophie", "Felix", "Emma", "Lukas", "Mia"], "table_title": "Tore",
           "q_table": "How many goals (Tore) for {}? Answer with the number only.",
           "functions": ["liste_sortieren", "mittelwert"], "q_code": "Which function is defined here? Answer with its name only.",
           "chart_titles": ["Niederschlag", "Downloads pro Woche"], "months": ["Juni", "Juli", "Aug", "Sep", "Okt"],
           "q_chart": "What does the chart's title say? Answer with the title only.",
           "slide_titles": ["Zusammenfassung", "Teamziele"], "bullets": ["Mehr Umsatz", "Neue Märkte", "Gute Qualität", "Schneller liefern"],
           "q_slide": "What is this slide's heading? Answer with the heading only."},
    "zh": {"shop": "阳光超市", "items": ["苹果", "牛奶", "鸡蛋", "大米", "香蕉"], "total": "总计",
           "q_total": "What is the total (总计)? Answer with the number only.",
           "names": ["赵磊", "孙丽", "周杰", "吴敏", "郑浩"], "table_title": "得分",
           "q_table": "What is the score for {}? Answer with the number only.",
           "functions": ["merge_lists", "compute_mean"], "q_code": "Which function is defined here? Answer with its name only.",
           "chart_titles": ["降雨量", "每周下载量"], "months": ["六月", "七月", "八月", "九月", "十月"],
           "q_chart": "What does the chart's title say? Answer with the title only.",
           "slide_titles": ["年度总结", "团队目标"], "bullets": ["招聘工程师", "减少浪费", "发布新版", "增加销量"],
           "q_slide": "What is this slide's heading? Answer with the heading only."},
}

if __name__ == "__main__":
    render(sys.argv[1], FONTS, WORDS, per_kind=2, seed=2)
