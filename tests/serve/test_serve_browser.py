"""The coders' web page in a real browser: headless Chromium from the distribution's packages
(/usr/bin/chromium, /usr/bin/chromedriver; .ci/run installs them) driven by Selenium against
``drg serve`` on a free loopback port. A coder types a case, picks a procedure from the name
autocomplete, and sees group, weight, payment, explanation and the 2.0-vs-3.0 comparison."""

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from servekit import running, weights_file

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=zh-CN",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_coder_enters_a_case_and_compares_2_0_with_3_0(browser, tmp_path):
    w = weights_file(tmp_path)
    with running("--weights", str(w), "--pack", "illustrative-2024") as base:
        b = browser
        wait = WebDriverWait(b, 30)
        b.get(base + "/")
        wait.until(lambda d: len(Select(d.find_element(By.ID, "ruleset")).options) == 2)
        assert "编码员工作台" in b.title
        assert Select(b.find_element(By.ID, "ruleset")).first_selected_option.get_attribute("value") == "chs-drg-2.0"
        assert Select(b.find_element(By.ID, "compare")).first_selected_option.get_attribute("value") == "chs-drg-3.0"
        Select(b.find_element(By.ID, "sex")).select_by_value("1")
        b.find_element(By.ID, "age").send_keys("53")
        b.find_element(By.ID, "los").send_keys("9")
        b.find_element(By.ID, "dx").send_keys("K76.600x006|K07.200x012|Q39.601|G62.806")
        # the procedure from the autocomplete: part of its name, then the suggestion
        b.find_element(By.ID, "px").send_keys("52.2100")
        item = wait.until(EC.element_to_be_clickable(
            (By.XPATH, "//ul[@id='px-suggest']/li[code[text()='52.2100x001']]")))
        item.click()
        assert b.find_element(By.ID, "px").get_attribute("value").startswith("52.2100x001")
        wait.until(lambda d: "感染性周围神经病" in d.find_element(By.ID, "dx-chips").text)
        b.find_element(By.ID, "submit").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 2)
        first, second = b.find_elements(By.CSS_SELECTOR, "#results .result")
        assert first.find_element(By.CLASS_NAME, "drg").text == "HJ11"
        assert "伴严重合并症或并发症" in first.find_element(By.CLASS_NAME, "drg-name").text
        assert second.find_element(By.CLASS_NAME, "drg").text == "HJ13"
        assert first.find_element(By.CLASS_NAME, "status").text == "分组成功"
        assert first.find_element(By.CLASS_NAME, "rw").text == "4.2"
        assert first.find_element(By.CLASS_NAME, "payment").text.startswith("44,100.00 元")
        assert first.find_element(By.CLASS_NAME, "case-type").text == "正常病例"
        assert "G62.806 感染性周围神经病" in first.find_element(By.CLASS_NAME, "decided").text
        assert "未配置权重" in second.find_element(By.CLASS_NAME, "rw").text  # weights only for 2.0
        explain = first.find_element(By.CLASS_NAME, "explain").text
        assert "DRG HJ11" in explain and "选定: MCC: G62.806" in explain and "MDC MDCH" in explain
        diff = b.find_element(By.ID, "diff").text
        assert "分组不同" in diff and "HJ11" in diff and "HJ13" in diff and "MCC → CC" in diff
        # a data-quality warning in Chinese, and only 2.0 when the comparison is off
        b.find_element(By.ID, "dx").send_keys("|ZZZ.999")
        b.find_element(By.ID, "compare-on").click()
        b.find_element(By.ID, "submit").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 1
                   and "其他诊断不在本方案" in d.find_element(By.CSS_SELECTOR, ".warnings").text)
        assert not b.find_element(By.ID, "diff").is_displayed()
        assert "本方案字典中没有" in b.find_element(By.ID, "dx-chips").text
